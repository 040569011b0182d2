using System.Globalization;
using CsCheck;

namespace Truestock.Core.Tests;

/// <summary>
/// Raw random material for one command. CsCheck generates and shrinks these; <see cref="Scenario.Decode"/>
/// turns a sequence of them into concrete commands deterministically (the decoding depends only on
/// the earlier raw ops, never on the shard), so the same command list can be replayed anywhere.
/// </summary>
internal readonly record struct RawOp(int Kind, int R1, int R2, int R3, long Q, int Dt, int Back);

/// <summary>Draws small choices out of the random bits of a <see cref="RawOp"/>; exhausted bits give 0 (the simplest choice).</summary>
internal struct Picker(RawOp op)
{
    private ulong _bits = (ulong)(uint)op.R1 | ((ulong)(uint)op.R2 << 20) | ((ulong)(uint)op.R3 << 40);

    public int Next(int choices)
    {
        var r = (int)(_bits % (ulong)choices);
        _bits /= (ulong)choices;
        return r;
    }
}

internal abstract record Cmd(DateTimeOffset Now);

internal sealed record EventCmd(DateTimeOffset Now, StockEvent Event) : Cmd(Now);

internal sealed record CreateCmd(DateTimeOffset Now, CreateReservation Request) : Cmd(Now);

internal sealed record CommitCmd(DateTimeOffset Now, string ReservationId) : Cmd(Now);

internal sealed record ReleaseCmd(DateTimeOffset Now, string ReservationId) : Cmd(Now);

internal sealed record ExpireCmd(DateTimeOffset Now) : Cmd(Now);

internal sealed record SafetyCmd(DateTimeOffset Now, string Sku, string LocationId, long Quantity) : Cmd(Now);

internal sealed record PruneCmd(DateTimeOffset Now) : Cmd(Now);

/// <summary>What a command answered: a comparable text, whether a host must journal it, and the typed outcome.</summary>
internal readonly record struct Outcome(string Text, bool Journaled, EventOutcome? Event = null, ReservationOutcome? Reservation = null);

internal static class Scenario
{
    public static readonly string[] Skus = ["A", "B", "C"];
    public static readonly string[] Locations = ["L1", "L2", "L3"];
    public static readonly string[] Channels = ["web", "pos", "market"];

    /// <summary>
    /// web sources [L1, L2]; pos sources [L3]; market sources [L2, L1, L3] with 50 %, a buffer of 1
    /// and a cap of 8.
    /// </summary>
    public static Shard NewShard()
    {
        var shard = new Shard();
        World.Declare(shard);
        shard.PutChannel(new Channel("market", "Marketplace", ["L2", "L1", "L3"], 50, 1, 8, null));
        return shard;
    }

    private static readonly Gen<long> Quantity = Gen.Frequency(
        (40, Gen.Long[1, 12]),
        (8, Gen.Long[13, 400]),
        (3, Gen.OneOf(0L, 1L)),
        (1, Gen.Const(Limits.QuantityMax)));

    public static readonly Gen<RawOp> Op = Gen.Select(
        Gen.Int[0, 99], Gen.Int[0, (1 << 20) - 1], Gen.Int[0, (1 << 20) - 1], Gen.Int[0, (1 << 20) - 1],
        Quantity, Gen.Int[0, 60], Gen.Int[0, 7200],
        (kind, r1, r2, r3, q, dt, back) => new RawOp(kind, r1, r2, r3, q, dt, back));

    /// <summary>50 to 300 commands.</summary>
    public static readonly Gen<RawOp[]> Ops = Op.Array[50, 300];

    public static List<Cmd> Decode(RawOp[] ops)
    {
        var now = World.T0;
        var cmds = new List<Cmd>(ops.Length);
        var events = new List<StockEvent>();
        var creates = new List<CreateReservation>();
        var seqs = new long[2];
        var n = 0;
        foreach (var op in ops)
        {
            n++;
            now = now.AddSeconds(op.Dt);
            var p = new Picker(op);
            var k = op.Kind;
            if (k is >= 50 and < 56 && events.Count > 0)
            {
                // The same event again, same content: a duplicate if it was accepted.
                cmds.Add(new EventCmd(now, events[p.Next(events.Count)]));
            }
            else if (k is >= 56 and < 59 && events.Count > 0)
            {
                // The same eventId with other content: an idempotency conflict if it was accepted.
                var e = events[p.Next(events.Count)];
                var q = e.Quantity >= Limits.QuantityMax ? e.Quantity - 1 : e.Quantity >= 0 ? e.Quantity + 1 : e.Quantity - 1;
                cmds.Add(new EventCmd(now, e with { Quantity = q, Fingerprint = new Fingerprint(e.Fingerprint.Hi, e.Fingerprint.Lo + 1 + (ulong)p.Next(3)) }));
            }
            else if (k < 59 || (k >= 92 && creates.Count == 0))
            {
                var e = NewEvent(op, ref p, now, n, creates, seqs, forceShipment: false);
                events.Add(e);
                cmds.Add(new EventCmd(now, e));
            }
            else if (k >= 92)
            {
                // A shipment against a line of a recent reservation.
                var e = NewEvent(op, ref p, now, n, creates, seqs, forceShipment: true);
                events.Add(e);
                cmds.Add(new EventCmd(now, e));
            }
            else if (k < 73 || (k < 75 && creates.Count == 0))
            {
                var request = NewReservation(op, ref p, n);
                creates.Add(request);
                cmds.Add(new CreateCmd(now, request));
                if (k >= 69)
                {
                    // An order: held and committed at once.
                    cmds.Add(new CommitCmd(now, request.ReservationId));
                }
            }
            else if (k < 75)
            {
                var request = creates[p.Next(creates.Count)];
                cmds.Add(new CreateCmd(now, p.Next(2) == 0
                    ? request
                    : request with { TtlSeconds = request.TtlSeconds + 1, Fingerprint = new Fingerprint(request.Fingerprint.Hi, 99) }));
            }
            else if (k < 80)
            {
                cmds.Add(new CommitCmd(now, PickReservation(ref p, creates)));
            }
            else if (k < 84)
            {
                cmds.Add(new ReleaseCmd(now, PickReservation(ref p, creates)));
            }
            else if (k < 88)
            {
                cmds.Add(new ExpireCmd(now));
            }
            else if (k < 91)
            {
                var sku = Skus[p.Next(Skus.Length)];
                var li = p.Next(16);
                var location = li == 15 ? "LX" : Locations[li % 3];
                cmds.Add(new SafetyCmd(now, sku, location, p.Next(5) == 0 ? op.Q : p.Next(8)));
            }
            else
            {
                // A month passes: holds expire, ids fall out of the idempotency memory.
                now = now.AddDays(31);
                cmds.Add(new PruneCmd(now));
            }
        }
        return cmds;
    }

    private static string PickReservation(ref Picker p, List<CreateReservation> creates) =>
        creates.Count == 0 || p.Next(12) == 0 ? "r-unknown" : Recent(ref p, creates).ReservationId;

    /// <summary>Mostly one of the last three requests, sometimes any.</summary>
    private static CreateReservation Recent(ref Picker p, List<CreateReservation> creates) =>
        p.Next(4) == 0 ? creates[p.Next(creates.Count)] : creates[creates.Count - 1 - p.Next(Math.Min(creates.Count, 3))];

    private static string[] SourcingOf(string channel) => channel switch
    {
        "web" => ["L1", "L2"],
        "pos" => ["L3"],
        "market" => ["L2", "L1", "L3"],
        _ => ["L1"],
    };

    private static StockEvent NewEvent(RawOp op, ref Picker p, DateTimeOffset now, int n, List<CreateReservation> creates, long[] seqs, bool forceShipment)
    {
        // Receipts weigh more than the other types so that there is stock to reserve.
        var pick = p.Next(20);
        var type = forceShipment ? EventType.Shipped : pick < 6 ? EventType.Received : (EventType)((pick - 6) % 11);
        var sku = Skus[p.Next(Skus.Length)];
        var li = p.Next(16);
        var location = li == 15 ? "LX" : Locations[li % 3];
        // Times on a 5-minute grid, up to two hours back: late events, ties with counts.
        var occurredAt = now.AddSeconds(-(op.Back / 300 * 300));
        var q = Math.Max(1, op.Q);
        string? to = null;
        string? reservationId = null;
        var disposition = Disposition.None;
        switch (type)
        {
            case EventType.Counted:
                q = op.Q;
                break;
            case EventType.Adjusted:
                q = p.Next(2) == 0 ? q : -q;
                break;
            case EventType.TransferShipped:
                var ti = p.Next(16);
                to = ti == 15 ? "LX" : Locations[ti % 3];
                break;
            case EventType.Inspected:
                disposition = (Disposition)(1 + p.Next(3));
                break;
            case EventType.Shipped:
                if (creates.Count > 0 && (forceShipment || p.Next(4) == 0))
                {
                    var request = Recent(ref p, creates);
                    var line = request.Lines[p.Next(request.Lines.Count)];
                    reservationId = request.ReservationId;
                    sku = line.Sku;
                    var sourcing = SourcingOf(request.ChannelId);
                    location = line.LocationId ?? (p.Next(3) > 0 ? sourcing[0] : sourcing[p.Next(sourcing.Length)]);
                    q = p.Next(4) switch { 0 => Math.Max(1, op.Q), 1 => 1, _ => line.Quantity };
                }
                break;
        }
        var source = p.Next(2);
        long? seq = null;
        switch (p.Next(6))
        {
            case 2:
            case 3:
                seq = ++seqs[source];
                break;
            case 4:
                seqs[source] += 2 + p.Next(25);
                seq = seqs[source];
                break;
            case 5:
                seq = Math.Max(1, seqs[source] - p.Next(3));
                break;
        }
        return new StockEvent
        {
            EventId = $"e{n}",
            Type = type,
            Sku = sku,
            LocationId = location,
            Quantity = q,
            OccurredAt = occurredAt,
            Source = $"src{source}",
            SourceSeq = seq,
            CorrelationId = $"c{n}",
            Reason = type == EventType.Adjusted ? "random" : null,
            ReservationId = reservationId,
            ToLocationId = to,
            Disposition = disposition,
            Fingerprint = new Fingerprint((ulong)n, 0),
        };
    }

    private static CreateReservation NewReservation(RawOp op, ref Picker p, int n)
    {
        var channel = p.Next(25) == 0 ? "no-channel" : Channels[p.Next(Channels.Length)];
        var lines = new ReservationLineRequest[1 + p.Next(3)];
        for (var i = 0; i < lines.Length; i++)
        {
            var sku = Skus[p.Next(Skus.Length)];
            var quantity = p.Next(10) == 0 ? Math.Max(1, op.Q) : 1 + p.Next(4);
            var mode = p.Next(10);
            var sourcing = SourcingOf(channel);
            var location = mode switch
            {
                < 5 => null,
                < 8 => sourcing[p.Next(sourcing.Length)],
                8 => Locations[p.Next(3)], // maybe outside the sourcing list
                _ => p.Next(3) == 0 ? "LX" : null,
            };
            lines[i] = new ReservationLineRequest(sku, quantity, location);
        }
        var id = $"r{n}";
        return new CreateReservation
        {
            ReservationId = id,
            ChannelId = channel,
            TtlSeconds = 30 + p.Next(600),
            CorrelationId = $"c{n}",
            Lines = lines,
            Fingerprint = World.FingerprintOf(id),
        };
    }

    public static Outcome Run(Shard shard, Cmd cmd, Effects fx)
    {
        switch (cmd)
        {
            case EventCmd c:
                var e = shard.ApplyEvent(c.Event, c.Now, fx);
                return new Outcome($"event {c.Event.EventId} {e.Status} {e.ErrorType}", e.Journaled, Event: e);
            case CreateCmd c:
                return Of(shard.CreateReservation(c.Request, c.Now, fx));
            case CommitCmd c:
                return Of(shard.CommitReservation(c.ReservationId, c.Now, "corr-commit", fx));
            case ReleaseCmd c:
                return Of(shard.ReleaseReservation(c.ReservationId, c.Now, "corr-release", fx));
            case ExpireCmd c:
                var expired = shard.ExpireDue(c.Now, fx);
                return new Outcome($"expired {expired}", expired > 0);
            case SafetyCmd c:
                var s = shard.SetSafetyStock(c.Sku, c.LocationId, c.Quantity, c.Now, "corr-safety", fx);
                return new Outcome($"safety {s.Result} {s.ErrorType}", s.Result != MasterDataResult.Rejected);
            case PruneCmd c:
                var pruned = shard.Prune(c.Now, fx);
                return new Outcome($"pruned {pruned}", pruned > 0);
            default:
                throw new InvalidOperationException(cmd.GetType().Name);
        }
    }

    private static Outcome Of(ReservationOutcome o)
    {
        var shortages = o.Shortages is null ? "" : string.Join(",", o.Shortages.Select(s => $"{s.Sku}:{s.Requested}/{s.Available}"));
        var lines = o.Reservation is null ? "" : string.Join(",", o.Reservation.Lines.Select(l => $"{l.Sku}@{l.LocationId}:{l.Quantity}"));
        return new Outcome(
            string.Create(CultureInfo.InvariantCulture, $"reservation {o.Result} {o.ErrorType} {o.Reservation?.Id} {o.Reservation?.Status} [{lines}] [{shortages}]"),
            o.Journaled, Reservation: o);
    }

    /// <summary>Runs the commands on a new shard; returns it and every answer.</summary>
    public static (Shard Shard, List<string> Answers) RunAll(IEnumerable<Cmd> cmds, Shard? shard = null)
    {
        shard ??= NewShard();
        var fx = new Effects();
        var answers = new List<string>();
        foreach (var cmd in cmds)
        {
            fx.Clear();
            answers.Add(Run(shard, cmd, fx).Text);
        }
        return (shard, answers);
    }
}
