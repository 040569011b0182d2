namespace Truestock.Core;

/// <summary>A copy of a position for snapshots.</summary>
public sealed record PositionState(
    string Sku, string LocationId, long OnHand, long Damaged, long Inspection, long Allocated, long Reserved,
    long Incoming, long SafetyStock, DateTimeOffset? CountedAt, long HistoryHorizonTicks, long[] HistoryTicks, long[] HistoryDeltas);

/// <summary>A copy of a reservation line for snapshots.</summary>
public sealed record ReservationLineState(string Sku, long Quantity, string LocationId, long Shipped);

/// <summary>A copy of a reservation for snapshots.</summary>
public sealed record ReservationState(
    string Id, string ChannelId, ReservationStatus Status, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt,
    DateTimeOffset? EndedAt, int TtlSeconds, string CorrelationId, ulong FingerprintHi, ulong FingerprintLo,
    IReadOnlyList<ReservationLineState> Lines);

/// <summary>An event id remembered for idempotency.</summary>
public sealed record SeenEventState(string EventId, ulong FingerprintHi, ulong FingerprintLo, DateTimeOffset RecordedAt);

/// <summary>The whole state of a shard, detached from it (for snapshots and comparisons).</summary>
public sealed record ShardState(
    IReadOnlyList<Location> Locations,
    IReadOnlyList<Channel> Channels,
    IReadOnlyList<PositionState> Positions,
    IReadOnlyList<ReservationState> Reservations,
    IReadOnlyList<SeenEventState> Events,
    IReadOnlyDictionary<string, long> SourceSequences,
    bool HasForgotten = false,
    IReadOnlyList<ChannelDegradation>? Degradations = null,
    IReadOnlyList<ChannelVelocity>? ChannelVelocities = null,
    IReadOnlyList<SkuVelocityState>? Velocities = null);

public sealed partial class Shard
{
    /// <summary>Copies the whole state out of the shard.</summary>
    public ShardState Export()
    {
        var positions = new List<PositionState>((int)Math.Min(_positionCount, int.MaxValue));
        foreach (var list in _skus.Values)
        {
            foreach (var p in list)
            {
                // The snapshot keeps its format of two parallel arrays, so that snapshots written before the
                // history became one array of pairs still load, and this one loads in older versions.
                var entries = p.History is { } history ? history.Entries : [];
                var ticks = entries.Length == 0 ? [] : new long[entries.Length];
                var deltas = entries.Length == 0 ? [] : new long[entries.Length];
                for (var i = 0; i < entries.Length; i++)
                {
                    ticks[i] = entries[i].Ticks;
                    deltas[i] = entries[i].Delta;
                }
                positions.Add(new PositionState(p.Sku, p.LocationId, p.OnHand, p.Damaged, p.Inspection, p.Allocated, p.Reserved,
                    p.Incoming, p.SafetyStock, p.CountedAt, p.History?.HorizonTicks ?? long.MinValue, ticks, deltas));
            }
        }
        var reservations = _reservations.Values.Select(r => new ReservationState(r.Id, r.ChannelId, r.Status, r.CreatedAt,
            r.ExpiresAt, r.EndedAt, r.TtlSeconds, r.CorrelationId, r.Fingerprint.Hi, r.Fingerprint.Lo,
            r.Lines.Select(l => new ReservationLineState(l.Sku, l.Quantity, l.LocationId, l.Shipped)).ToArray())).ToList();
        var events = _events.Select(kv => new SeenEventState(kv.Key, kv.Value.Fingerprint.Hi, kv.Value.Fingerprint.Lo, kv.Value.RecordedAt)).ToList();
        return new ShardState(_locations.Values.ToList(), _channels.Values.ToList(), positions, reservations, events,
            new Dictionary<string, long>(_sourceSeqs, StringComparer.Ordinal), HasForgotten,
            _degradations.Select(kv => new ChannelDegradation(kv.Key, kv.Value.Units, kv.Value.Percent, "snapshot")).ToList(),
            _channelVelocities.Values.ToList(),
            _velocities.Select(kv => new SkuVelocityState(kv.Key, kv.Value.Rate, kv.Value.Ticks)).ToList());
    }

    /// <summary>Builds a shard from exported state.</summary>
    public static Shard Import(ShardState state, int idempotencyRetentionDays = Limits.IdempotencyRetentionDaysDefault)
    {
        ArgumentNullException.ThrowIfNull(state);
        var shard = new Shard(idempotencyRetentionDays);
        foreach (var l in state.Locations)
        {
            shard._locations[l.Id] = l;
        }
        foreach (var c in state.Channels)
        {
            shard._channels[c.Id] = c;
        }
        foreach (var p in state.Positions)
        {
            var pos = shard.GetOrCreatePosition(p.Sku, p.LocationId);
            pos.OnHand = p.OnHand;
            pos.Damaged = p.Damaged;
            pos.Inspection = p.Inspection;
            pos.Allocated = p.Allocated;
            pos.Reserved = p.Reserved;
            pos.Incoming = p.Incoming;
            pos.SafetyStock = p.SafetyStock;
            pos.CountedAt = p.CountedAt;
            if (p.HistoryTicks.Length > 0 || p.HistoryHorizonTicks != long.MinValue)
            {
                pos.History = OnHandHistory.Restore(p.HistoryHorizonTicks, p.HistoryTicks, p.HistoryDeltas);
            }
        }
        foreach (var r in state.Reservations)
        {
            var reservation = new Reservation
            {
                Id = r.Id,
                ChannelId = r.ChannelId,
                Status = r.Status,
                CreatedAt = r.CreatedAt,
                ExpiresAt = r.ExpiresAt,
                EndedAt = r.EndedAt,
                TtlSeconds = r.TtlSeconds,
                CorrelationId = r.CorrelationId,
                Fingerprint = new Fingerprint(r.FingerprintHi, r.FingerprintLo),
                Lines = r.Lines.Select(l => new ReservationLine { Sku = l.Sku, Quantity = l.Quantity, LocationId = l.LocationId, Shipped = l.Shipped }).ToArray(),
            };
            shard._reservations[r.Id] = reservation;
            if (reservation.Status == ReservationStatus.Held)
            {
                shard._expiries.Enqueue(reservation, reservation.ExpiresAt);
            }
        }
        foreach (var e in state.Events)
        {
            shard._events[e.EventId] = new SeenEvent(new Fingerprint(e.FingerprintHi, e.FingerprintLo), e.RecordedAt);
        }
        foreach (var (source, seq) in state.SourceSequences)
        {
            shard._sourceSeqs[source] = seq;
        }
        shard.HasForgotten = state.HasForgotten;
        foreach (var d in state.Degradations ?? [])
        {
            shard._degradations[d.ChannelId] = new DegradationBuffer(d.Units, d.Percent);
        }
        foreach (var v in state.ChannelVelocities ?? [])
        {
            shard._channelVelocities[v.ChannelId] = v;
        }
        foreach (var v in state.Velocities ?? [])
        {
            shard._velocities[v.Sku] = new SkuVelocity { Rate = v.UnitsPerSecond, Ticks = v.AtTicks };
        }
        return shard;
    }

    /// <summary>
    /// True once <see cref="Prune"/> has dropped an id: from then on the host must look ids up in
    /// durable storage before deciding (see <see cref="StockEvent.PriorFingerprint"/>).
    /// </summary>
    public bool HasForgotten { get; private set; }

    /// <summary>
    /// Forgets event ids recorded, and reservations ended, longer than the retention ago. Their
    /// ledger rows stay in the journal, and the host keeps every accepted id durably (see
    /// <see cref="StockEvent.PriorFingerprint"/>), so duplicates stay duplicates for ever; only
    /// memory is released.
    /// </summary>
    /// <returns>How many entries were forgotten.</returns>
    public int Prune(DateTimeOffset now, Effects effects)
    {
        ArgumentNullException.ThrowIfNull(effects);
        var cutoff = now - IdempotencyRetention;
        var oldEvents = _events.Where(kv => kv.Value.RecordedAt < cutoff).Select(kv => kv.Key).ToList();
        foreach (var id in oldEvents)
        {
            _events.Remove(id);
        }
        var oldReservations = _reservations.Values.Where(r => r.EndedAt is { } ended && ended < cutoff).ToList();
        foreach (var r in oldReservations)
        {
            _reservations.Remove(r.Id);
        }
        if (effects.Recording)
        {
            effects.ForgottenReservations.AddRange(oldReservations);
        }
        HasForgotten |= oldEvents.Count + oldReservations.Count > 0;
        return oldEvents.Count + oldReservations.Count;
    }
}
