using CsCheck;

namespace Truestock.Core.Tests;

/// <summary>
/// The model's invariants over random histories: every event type with edge quantities, late and
/// out-of-order events, counts, duplicates and idempotency conflicts, sequence gaps, unknown
/// locations, reservations through three channels (create, resend, commit, release, expire),
/// safety stock changes and a month passing (prune), with time moving forward.
/// </summary>
public sealed class InvariantPropertyTests
{
    private const int Iterations = 120;

    private static readonly string[] ReservationIds = Enumerable.Range(1, 300).Select(i => $"r{i}").ToArray();

    [Fact]
    public void random_histories_keep_the_model_invariants_after_every_command()
    {
        Scenario.Ops.Sample(ops => RunChecked(Scenario.Decode(ops)), iter: Iterations);
    }

    [Fact]
    public void replaying_the_commands_into_a_new_shard_gives_exactly_the_same_state()
    {
        Scenario.Ops.Sample(ops =>
        {
            var cmds = Scenario.Decode(ops);
            var (live, liveAnswers) = Scenario.RunAll(cmds);
            var (replayed, replayAnswers) = Scenario.RunAll(cmds);

            Assert.Equal(liveAnswers, replayAnswers);
            Assert.Equal(Snapshot.Of(live), Snapshot.Of(replayed));
        }, iter: Iterations);
    }

    [Fact]
    public void export_import_midway_then_continuing_gives_the_same_state_as_never_stopping()
    {
        Gen.Select(Scenario.Ops, Gen.Int[0, 300]).Sample((ops, at) =>
        {
            var cmds = Scenario.Decode(ops);
            var split = at % (cmds.Count + 1);
            var (uninterrupted, answers) = Scenario.RunAll(cmds);

            var (first, _) = Scenario.RunAll(cmds.Take(split));
            var exported = first.Export();
            var imported = Shard.Import(exported);
            Assert.Equal(Snapshot.Of(exported), Snapshot.Of(imported));
            var (continued, tail) = Scenario.RunAll(cmds.Skip(split), imported);

            Assert.Equal(answers.Skip(split), tail);
            Assert.Equal(Snapshot.Of(uninterrupted), Snapshot.Of(continued));
        }, iter: Iterations);
    }

    /// <summary>
    /// A host that runs <see cref="Shard.ExpireDue"/> with the batch time before deciding a command
    /// (as the sequencer does) and journals only what <c>Journaled</c> asks for, plus expiries and
    /// prunes that changed something, can rebuild the state from that journal alone.
    /// </summary>
    [Fact]
    public void replaying_only_the_journaled_commands_rebuilds_the_state_when_expiry_runs_first()
    {
        Scenario.Ops.Sample(ops =>
        {
            var cmds = Scenario.Decode(ops);
            var live = Scenario.NewShard();
            var fx = new Effects();
            var journal = new List<Cmd>();
            foreach (var cmd in cmds)
            {
                fx.Clear();
                if (live.ExpireDue(cmd.Now, fx) > 0)
                {
                    journal.Add(new ExpireCmd(cmd.Now));
                }
                if (Scenario.Run(live, cmd, fx).Journaled)
                {
                    journal.Add(cmd);
                }
            }

            var (rebuilt, _) = Scenario.RunAll(journal);

            Assert.Equal(Snapshot.Of(live), Snapshot.Of(rebuilt));
        }, iter: Iterations);
    }

    /// <summary>
    /// Count ordering makes onHand independent of arrival order: whatever order the events of one
    /// position arrive in, onHand ends as the latest count plus every onHand change that happened
    /// after it (or the sum of all changes when nothing was counted).
    /// </summary>
    [Fact]
    public void on_hand_does_not_depend_on_the_order_events_arrive_in()
    {
        var gen = Gen.Select(Gen.Int[0, 10], Gen.Int[0, 40], Gen.Long[0, 20], Gen.Int[0, 5]).Array[1, 80];
        gen.Sample(raw =>
        {
            var w = new World();
            var countMinutes = new HashSet<int>();
            var movements = new List<(int Minute, long Delta)>();
            (int Minute, long Quantity)? latestCount = null;
            var i = 0;
            foreach (var (typeIndex, minute, quantity, extra) in raw)
            {
                var type = (EventType)typeIndex;
                var at = w.At(minute);
                if (type == EventType.Counted)
                {
                    if (!countMinutes.Add(minute))
                    {
                        continue; // two counts at the same instant are ambiguous: keep one
                    }
                    w.Apply(w.Event(type, quantity, at: at, id: $"x{i++}"));
                    if (latestCount is null || minute > latestCount.Value.Minute)
                    {
                        latestCount = (minute, quantity);
                    }
                    continue;
                }
                var q = Math.Max(1, quantity);
                var disposition = type == EventType.Inspected ? (Disposition)(1 + (extra % 3)) : Disposition.None;
                var signed = type == EventType.Adjusted && extra % 2 == 1 ? -q : q;
                var delta = type switch
                {
                    EventType.Received or EventType.ReturnReceived or EventType.TransferReceived => q,
                    EventType.Adjusted => signed,
                    EventType.Sold or EventType.WrittenOff or EventType.TransferShipped or EventType.Shipped => -q,
                    EventType.Inspected when disposition == Disposition.Scrap => -q,
                    _ => 0,
                };
                var outcome = w.Apply(w.Event(type, signed, at: at, id: $"x{i++}", to: "L2", disposition: disposition));
                Assert.NotEqual(EventStatus.Rejected, outcome.Status);
                movements.Add((minute, delta));
            }

            var expected = latestCount is { } c
                ? c.Quantity + movements.Where(m => m.Minute > c.Minute).Sum(m => m.Delta)
                : movements.Sum(m => m.Delta);
            Assert.Equal(expected, w.Shard.FindPosition("A", "L1")?.OnHand ?? 0);
            var p = w.Shard.FindPosition("A", "L1");
            if (p is not null)
            {
                Assert.True(p.Damaged + p.Inspection <= Math.Max(0, p.OnHand));
            }
        }, iter: 300);
    }

    // ------------------------------------------------------------------ the checked run

    private static void RunChecked(List<Cmd> cmds)
    {
        var shard = Scenario.NewShard();
        var fx = new Effects();
        var accepted = new Dictionary<string, (Fingerprint Fingerprint, DateTimeOffset At)>(StringComparer.Ordinal);
        for (var i = 0; i < cmds.Count; i++)
        {
            var cmd = cmds[i];
            fx.Clear();
            var before = Snapshot.Quantities(shard, Scenario.Skus, ReservationIds);
            var availableBefore = Available(shard);

            var outcome = Scenario.Run(shard, cmd, fx);

            var where = $"command {i}: {cmd} -> {outcome.Text}";
            var after = Snapshot.Quantities(shard, Scenario.Skus, ReservationIds);
            var availableAfter = Available(shard);
            switch (cmd)
            {
                case EventCmd { Event: var e }:
                    CheckEvent(shard, e, outcome.Event!.Value, accepted, before, after, availableBefore, fx, where);
                    break;
                case CreateCmd { Request: var request }:
                    CheckNeverOversold(availableBefore, availableAfter, where);
                    var r = outcome.Reservation!.Value;
                    switch (r.Result)
                    {
                        case ReservationResult.Created:
                            Assert.True(r.Reservation!.Lines.All(l => shard.AvailableAt(l.Sku, l.LocationId) >= 0), where);
                            Assert.Equal(request.Lines.Sum(l => l.Quantity), r.Reservation.Lines.Sum(l => l.Quantity));
                            break;
                        case ReservationResult.Existing:
                            Assert.Equal(request.Fingerprint, r.Reservation!.Fingerprint);
                            break;
                        case ReservationResult.Conflict:
                            Assert.NotEqual(request.Fingerprint, r.Reservation!.Fingerprint);
                            Assert.Equal(before, after);
                            break;
                        default:
                            Assert.Contains(r.Result, new[] { ReservationResult.Insufficient, ReservationResult.Invalid });
                            Assert.Equal(before, after);
                            break;
                    }
                    break;
                case CommitCmd or ReleaseCmd:
                    CheckNeverOversold(availableBefore, availableAfter, where);
                    if (outcome.Reservation!.Value.Result is ReservationResult.Unchanged or ReservationResult.NotFound)
                    {
                        Assert.Equal(before, after);
                    }
                    break;
                case ExpireCmd or SafetyCmd:
                    CheckNeverOversold(availableBefore, availableAfter, where);
                    if (!outcome.Journaled)
                    {
                        Assert.Equal(before, after);
                    }
                    break;
                case PruneCmd p:
                    var cutoff = p.Now - shard.IdempotencyRetention;
                    foreach (var id in accepted.Where(kv => kv.Value.At < cutoff).Select(kv => kv.Key).ToList())
                    {
                        accepted.Remove(id);
                    }
                    break;
            }
            Assert.Equal(accepted.Count, shard.RememberedEventCount);
            CheckPositions(shard, where);
            CheckReservationTotals(shard, where);
        }
    }

    private static void CheckEvent(Shard shard, StockEvent e, EventOutcome outcome,
        Dictionary<string, (Fingerprint Fingerprint, DateTimeOffset At)> accepted,
        string before, string after, Dictionary<(string, string), long> availableBefore, Effects fx, string where)
    {
        if (accepted.TryGetValue(e.EventId, out var seen))
        {
            if (seen.Fingerprint == e.Fingerprint)
            {
                Assert.True(outcome.Status == EventStatus.Duplicate, where);
                Assert.Empty(fx.Ledger);
                Assert.Empty(fx.Exceptions);
            }
            else
            {
                Assert.True(outcome.Status == EventStatus.Rejected && outcome.ErrorType == RejectionTypes.IdempotencyConflict, where);
            }
        }
        else
        {
            Assert.True(outcome.Status != EventStatus.Duplicate && outcome.ErrorType != RejectionTypes.IdempotencyConflict, where);
            if (outcome.Status != EventStatus.Rejected)
            {
                accepted[e.EventId] = (e.Fingerprint, fx.Ledger[^1].RecordedAt);
            }
        }
        if (outcome.Status is EventStatus.Duplicate or EventStatus.Rejected)
        {
            // A duplicate (invariant 3) and a rejection change nothing, not even the remembered ids.
            Assert.True(before == after, $"{where}\nbefore:\n{before}\nafter:\n{after}");
        }
        if (outcome.Status is EventStatus.Stale)
        {
            // A stale count changes no quantity (its id is remembered).
            Assert.True(WithoutCounters(before) == WithoutCounters(after), $"{where}\nbefore:\n{before}\nafter:\n{after}");
        }
        Assert.True(outcome.Status != EventStatus.Stale || e.Type == EventType.Counted, where);
        Assert.True(outcome.Status != EventStatus.Superseded || e.Type != EventType.Counted, where);
        if (outcome.Status is EventStatus.Applied or EventStatus.Superseded && shard.FindPosition(e.Sku, e.LocationId) is { } p)
        {
            // Physical events may oversell, but never silently.
            var previous = availableBefore.GetValueOrDefault((e.Sku, e.LocationId));
            if (p.Available < 0 && p.Available < previous)
            {
                Assert.Contains(fx.Exceptions, x => x.Type == ExceptionTypes.Oversell && x.Quantity == -p.Available && x.LocationId == p.LocationId);
            }
        }
    }

    /// <summary>Invariant 1: a reservation command, expiry or policy change never pushes available below zero.</summary>
    private static void CheckNeverOversold(Dictionary<(string, string), long> before, Dictionary<(string, string), long> after, string where)
    {
        foreach (var (key, value) in after)
        {
            var previous = before.GetValueOrDefault(key);
            Assert.True(value >= previous || value >= 0, $"{where}: available at {key} went from {previous} to {value}");
        }
    }

    /// <summary>Invariant 5.</summary>
    private static void CheckPositions(Shard shard, string where)
    {
        foreach (var sku in Scenario.Skus)
        {
            foreach (var p in shard.PositionsOf(sku))
            {
                Assert.True(p.Damaged >= 0 && p.Inspection >= 0 && p.Allocated >= 0 && p.Reserved >= 0 && p.Incoming >= 0 && p.SafetyStock >= 0,
                    $"{where}: negative quantity at {p.Sku}@{p.LocationId}");
                // onHand may itself be negative (recorded as an exception); damaged and inspection are then 0.
                Assert.True(p.Damaged + p.Inspection <= Math.Max(0, p.OnHand),
                    $"{where}: damaged {p.Damaged} + inspection {p.Inspection} exceed onHand {p.OnHand} at {p.Sku}@{p.LocationId}");
                Assert.Equal(p.OnHand - p.Damaged - p.Inspection - p.Allocated - p.Reserved - p.SafetyStock, p.Available);
            }
        }
    }

    /// <summary>
    /// reserved is exactly what held reservations hold, and allocated exactly what committed
    /// reservations have not shipped yet (allocated only decreases by shipments against a line,
    /// limited to the line's remainder, and by releases).
    /// </summary>
    private static void CheckReservationTotals(Shard shard, string where)
    {
        var reserved = new Dictionary<(string, string), long>();
        var allocated = new Dictionary<(string, string), long>();
        foreach (var id in ReservationIds)
        {
            if (shard.FindReservation(id) is not { } r)
            {
                continue;
            }
            foreach (var l in r.Lines)
            {
                Assert.InRange(l.Shipped, 0, l.Quantity);
                var key = (l.Sku, l.LocationId);
                if (r.Status == ReservationStatus.Held)
                {
                    Assert.Equal(0, l.Shipped);
                    reserved[key] = reserved.GetValueOrDefault(key) + l.Quantity;
                }
                else if (r.Status == ReservationStatus.Committed)
                {
                    allocated[key] = allocated.GetValueOrDefault(key) + l.Quantity - l.Shipped;
                }
            }
            if (r.Status == ReservationStatus.Fulfilled)
            {
                Assert.All(r.Lines, l => Assert.Equal(l.Quantity, l.Shipped));
            }
            Assert.Equal(r.Status is ReservationStatus.Released or ReservationStatus.Expired or ReservationStatus.Fulfilled, r.EndedAt is not null);
        }
        foreach (var sku in Scenario.Skus)
        {
            foreach (var p in shard.PositionsOf(sku))
            {
                var key = (p.Sku, p.LocationId);
                Assert.True(reserved.GetValueOrDefault(key) == p.Reserved, $"{where}: reserved {p.Reserved} at {key}, held lines {reserved.GetValueOrDefault(key)}");
                Assert.True(allocated.GetValueOrDefault(key) == p.Allocated, $"{where}: allocated {p.Allocated} at {key}, unshipped committed lines {allocated.GetValueOrDefault(key)}");
            }
        }
    }

    private static string WithoutCounters(string quantities) => quantities[..quantities.LastIndexOf("positions=", StringComparison.Ordinal)];

    private static Dictionary<(string, string), long> Available(Shard shard)
    {
        var map = new Dictionary<(string, string), long>();
        foreach (var sku in Scenario.Skus)
        {
            foreach (var p in shard.PositionsOf(sku))
            {
                map[(p.Sku, p.LocationId)] = p.Available;
            }
        }
        return map;
    }
}
