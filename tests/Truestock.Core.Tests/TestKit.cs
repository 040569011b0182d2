using System.Globalization;
using System.Text;

namespace Truestock.Core.Tests;

/// <summary>
/// A shard with the standard master data, a clock and one effects buffer, so that each test reads
/// as the story it tells. Locations: L1 (store), L2 (warehouse), L3 (dc). Channels: web sources
/// [L1, L2] at 100 %, pos sources [L3].
/// </summary>
internal sealed class World
{
    public static readonly DateTimeOffset T0 = new(2025, 3, 1, 9, 0, 0, TimeSpan.Zero);

    private int _seq;

    public World(int retentionDays = Limits.IdempotencyRetentionDaysDefault)
    {
        Shard = new Shard(retentionDays);
        Declare(Shard);
    }

    public Shard Shard { get; }

    public Effects Fx { get; } = new();

    public DateTimeOffset Now { get; set; } = T0;

    public static void Declare(Shard shard)
    {
        shard.PutLocation(new Location("L1", "Store 1", LocationType.Store));
        shard.PutLocation(new Location("L2", "Warehouse", LocationType.Warehouse));
        shard.PutLocation(new Location("L3", "DC", LocationType.Dc));
        shard.PutChannel(new Channel("web", "Web shop", ["L1", "L2"], 100, 0, null, null));
        shard.PutChannel(new Channel("pos", "Point of sale", ["L3"], 100, 0, null, null));
    }

    public DateTimeOffset At(int minutes) => T0.AddMinutes(minutes);

    public StockEvent Event(
        EventType type,
        long quantity,
        string sku = "A",
        string location = "L1",
        DateTimeOffset? at = null,
        string? id = null,
        Fingerprint? fingerprint = null,
        string? reservationId = null,
        string? to = null,
        Disposition disposition = Disposition.None,
        long? seq = null,
        string source = "erp")
    {
        var n = ++_seq;
        return new StockEvent
        {
            EventId = id ?? $"e{n}",
            Type = type,
            Sku = sku,
            LocationId = location,
            Quantity = quantity,
            OccurredAt = at ?? Now,
            Source = source,
            SourceSeq = seq,
            CorrelationId = $"corr-{n}",
            Reason = type == EventType.Adjusted ? "test adjustment" : null,
            ReservationId = reservationId,
            ToLocationId = to,
            Disposition = disposition,
            Fingerprint = fingerprint ?? new Fingerprint((ulong)n, 0xE0E0),
        };
    }

    public EventOutcome Apply(StockEvent e) => Shard.ApplyEvent(e, Now, Fx);

    public EventOutcome Apply(
        EventType type,
        long quantity,
        string sku = "A",
        string location = "L1",
        DateTimeOffset? at = null,
        string? id = null,
        Fingerprint? fingerprint = null,
        string? reservationId = null,
        string? to = null,
        Disposition disposition = Disposition.None,
        long? seq = null,
        string source = "erp") =>
        Apply(Event(type, quantity, sku, location, at, id, fingerprint, reservationId, to, disposition, seq, source));

    /// <summary>Receives stock and checks that it was applied.</summary>
    public void Stock(long quantity, string sku = "A", string location = "L1", DateTimeOffset? at = null) =>
        Assert.Equal(EventStatus.Applied, Apply(EventType.Received, quantity, sku, location, at).Status);

    public static ReservationLineRequest Line(string sku, long quantity, string? location = null) => new(sku, quantity, location);

    public static Fingerprint FingerprintOf(string text)
    {
        // FNV-1a: a stable digest for test requests (string.GetHashCode is randomized per process).
        ulong h = 14695981039346656037;
        foreach (var c in text)
        {
            h = (h ^ c) * 1099511628211;
        }
        return new Fingerprint(h, 0xA11);
    }

    public static CreateReservation Request(string id, string channel, int ttlSeconds, params ReservationLineRequest[] lines) => new()
    {
        ReservationId = id,
        ChannelId = channel,
        TtlSeconds = ttlSeconds,
        CorrelationId = $"corr-{id}",
        Lines = lines,
        Fingerprint = FingerprintOf(id),
    };

    public ReservationOutcome Reserve(CreateReservation request) => Shard.CreateReservation(request, Now, Fx);

    public ReservationOutcome Reserve(string id, string channel, params ReservationLineRequest[] lines) =>
        Reserve(Request(id, channel, Limits.TtlSecondsDefault, lines));

    public ReservationOutcome ReserveFor(string id, string channel, int ttlSeconds, params ReservationLineRequest[] lines) =>
        Reserve(Request(id, channel, ttlSeconds, lines));

    public ReservationOutcome Commit(string id) => Shard.CommitReservation(id, Now, $"corr-commit-{id}", Fx);

    public ReservationOutcome Release(string id) => Shard.ReleaseReservation(id, Now, $"corr-release-{id}", Fx);

    /// <summary>Creates and commits a reservation, checking both steps.</summary>
    public Reservation Order(string id, string channel, params ReservationLineRequest[] lines)
    {
        var created = Reserve(id, channel, lines);
        Assert.Equal(ReservationResult.Created, created.Result);
        Assert.Equal(ReservationResult.Changed, Commit(id).Result);
        return created.Reservation!;
    }

    public Position Pos(string sku = "A", string location = "L1") =>
        Shard.FindPosition(sku, location) ?? throw new InvalidOperationException($"No position {sku}@{location}.");

    public ExceptionRecord[] Raised(string type) => Fx.Exceptions.Where(x => x.Type == type).ToArray();

    public string State() => Snapshot.Of(Shard);
}

/// <summary>Runs every command on two shards at the same time and checks that they answer and record alike.</summary>
internal sealed class Twin(Shard original, Shard copy, DateTimeOffset now)
{
    public List<ExceptionRecord> Exceptions { get; } = [];

    public void Do(Func<Shard, Effects, DateTimeOffset, object> command)
    {
        var fa = new Effects();
        var fb = new Effects();
        var a = command(original, fa, now);
        var b = command(copy, fb, now);
        Assert.Equal(a, b);
        Assert.Equal(fa.Ledger, fb.Ledger);
        Assert.Equal(fa.Exceptions, fb.Exceptions);
        Exceptions.AddRange(fa.Exceptions);
    }
}

/// <summary>Canonical text forms of a shard's state, for exact comparisons with readable diffs.</summary>
internal static class Snapshot
{
    public static string Of(Shard shard) => Of(shard.Export());

    /// <summary>Everything Export() returns, in a canonical order.</summary>
    public static string Of(ShardState s)
    {
        var sb = new StringBuilder();
        foreach (var l in s.Locations.OrderBy(l => l.Id, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"location {l.Id} {l.Name} {l.Type}\n");
        }
        foreach (var c in s.Channels.OrderBy(c => c.Id, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"channel {c.Id} [{string.Join(",", c.Locations)}] p={c.AllocationPercent} b={c.BufferUnits} m={c.MaxQuantity}\n");
        }
        foreach (var p in s.Positions.OrderBy(p => p.Sku, StringComparer.Ordinal).ThenBy(p => p.LocationId, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"position {p.Sku}@{p.LocationId} onHand={p.OnHand} damaged={p.Damaged} inspection={p.Inspection} allocated={p.Allocated} reserved={p.Reserved} incoming={p.Incoming} safety={p.SafetyStock} countedAt={p.CountedAt?.UtcTicks} horizon={p.HistoryHorizonTicks} history=[{string.Join(",", p.HistoryTicks.Zip(p.HistoryDeltas, (t, d) => $"{t}:{d}"))}]\n");
        }
        foreach (var r in s.Reservations.OrderBy(r => r.Id, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"reservation {r.Id} {r.ChannelId} {r.Status} created={r.CreatedAt.UtcTicks} expires={r.ExpiresAt.UtcTicks} ended={r.EndedAt?.UtcTicks} ttl={r.TtlSeconds} corr={r.CorrelationId} fp={r.FingerprintHi}/{r.FingerprintLo} lines=[{string.Join(",", r.Lines.Select(l => $"{l.Sku}@{l.LocationId}:{l.Quantity}/{l.Shipped}"))}]\n");
        }
        foreach (var e in s.Events.OrderBy(e => e.EventId, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"event {e.EventId} fp={e.FingerprintHi}/{e.FingerprintLo} at={e.RecordedAt.UtcTicks}\n");
        }
        foreach (var (source, seq) in s.SourceSequences.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"source {source} seq={seq}\n");
        }
        return sb.ToString();
    }

    /// <summary>Just the quantities of the positions and the reservations' states: cheap enough to take before every command.</summary>
    public static string Quantities(Shard shard, IEnumerable<string> skus, IEnumerable<string> reservationIds)
    {
        var sb = new StringBuilder();
        foreach (var sku in skus)
        {
            foreach (var p in shard.PositionsOf(sku))
            {
                sb.Append(CultureInfo.InvariantCulture,
                    $"{p.Sku}@{p.LocationId} {p.OnHand} {p.Damaged} {p.Inspection} {p.Allocated} {p.Reserved} {p.Incoming} {p.SafetyStock} {p.CountedAt?.UtcTicks}\n");
            }
        }
        foreach (var id in reservationIds)
        {
            if (shard.FindReservation(id) is { } r)
            {
                sb.Append(CultureInfo.InvariantCulture,
                    $"{r.Id} {r.Status} {r.EndedAt?.UtcTicks} {string.Join(",", r.Lines.Select(l => l.Shipped))}\n");
            }
        }
        sb.Append(CultureInfo.InvariantCulture,
            $"positions={shard.PositionCount} events={shard.RememberedEventCount} reservations={shard.ReservationCount}\n");
        return sb.ToString();
    }
}
