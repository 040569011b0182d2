using System.Globalization;
using Xunit.Abstractions;

namespace Truestock.Core.Tests;

/// <summary>
/// Allocation budgets of the engine's hot path. Allocated bytes are deterministic for a given
/// build and input, unlike time, so they can be checked in a unit test; throughput belongs to
/// the benchmark (bench/Truestock.Bench), which reports against the targets without failing.
/// </summary>
public sealed class AllocationBudgetTests(ITestOutputHelper output)
{
    /// <summary>
    /// Bytes allocated per ApplyEvent on an existing position, in steady state. Measured: 0 B (the
    /// sequence-gap text, whose closure used to cost 24 B on every call, is now built only when
    /// there is a gap). The budget leaves 8 B of margin so that one stray allocation on the hot
    /// path fails this test.
    /// </summary>
    private const double EventBytesPerDecisionBudget = 8;

    /// <summary>
    /// Bytes allocated per reservation decision (a one-line create, then its release), in steady
    /// state. Measured: 104 B, all of it the state a hold keeps until it is forgotten: the
    /// Reservation (128 B), its ReservationLine (48 B) and the one-element line array (32 B), per
    /// create + release pair. The list of held lines and the enumerators of foreach over
    /// IReadOnlyList&lt;T&gt;, which made it 220 B, are gone; the budget leaves 8 B of margin so that
    /// one of them coming back fails this test.
    /// </summary>
    private const double ReservationBytesPerDecisionBudget = 112;

    private const int Positions = 256;
    private const int Decisions = 20_000;
    private const int BatchSize = 1024;
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly string[] Locations = ["L1", "L2"];

    [Fact]
    public void received_and_sold_on_existing_positions_stay_within_the_allocation_budget()
    {
        var shard = new Shard(idempotencyRetentionDays: 1);
        foreach (var l in Locations)
        {
            shard.PutLocation(new Location(l, l, LocationType.Warehouse));
        }
        var fx = new Effects();
        for (var p = 0; p < Positions; p++)
        {
            Apply(shard, fx, Event($"seed-{p}", EventType.Counted, p, 1_000_000, T0), T0);
        }
        fx.Clear();

        // Warm-up with as many fresh ids and movements per position as the measured run, so that
        // the id dictionary, the movement histories and the effect lists already have the capacity
        // it needs. Then the ids are forgotten (a dictionary keeps its capacity after removals) and
        // a count per position empties every history (its arrays keep their size), so the
        // measured run starts from the same shape without reusing a single id.
        var warmAt = T0.AddDays(1);
        foreach (var e in Movements("warm", warmAt))
        {
            Apply(shard, fx, e, warmAt.AddHours(1));
        }
        var countAt = warmAt.AddDays(1);
        shard.Prune(countAt.AddDays(1), fx);
        for (var p = 0; p < Positions; p++)
        {
            Apply(shard, fx, Event($"count-{p}", EventType.Counted, p, 1_000_000, countAt), countAt);
        }
        fx.Clear();

        // Fresh ids, built before the measured region so that only deciding is counted.
        var measuredAt = countAt.AddMinutes(1);
        var events = Movements("m", measuredAt);
        var now = measuredAt.AddHours(1);
        var applied = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < events.Length; i++)
        {
            if (shard.ApplyEvent(events[i], now, fx).Status == EventStatus.Applied)
            {
                applied++;
            }
            if (i % BatchSize == BatchSize - 1)
            {
                // The host clears the effects buffer after every group commit.
                fx.Clear();
            }
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        var perDecision = (double)allocated / Decisions;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ApplyEvent on existing positions: {perDecision:F1} B per decision ({allocated:N0} B over {Decisions:N0} decisions); budget {EventBytesPerDecisionBudget} B."));
        Assert.Equal(Decisions, applied);
        Assert.True(perDecision <= EventBytesPerDecisionBudget,
            $"ApplyEvent allocated {perDecision:F1} B per decision; the budget is {EventBytesPerDecisionBudget} B. Something new allocates on the hot path.");
    }

    [Fact]
    public void reservation_create_and_release_stay_within_the_allocation_budget()
    {
        var shard = new Shard(idempotencyRetentionDays: 1);
        foreach (var l in Locations)
        {
            shard.PutLocation(new Location(l, l, LocationType.Warehouse));
        }
        shard.PutChannel(new Channel("web", "web", Locations, 100, 0, null, null));
        var fx = new Effects();
        for (var p = 0; p < Positions; p++)
        {
            Apply(shard, fx, Event($"seed-{p}", EventType.Counted, p, 1_000_000, T0), T0);
        }
        fx.Clear();

        // Warm-up with as many fresh ids as the measured run, so that the reservation dictionary
        // and the expiry queue already have the capacity it needs; then the ended reservations are
        // forgotten (both keep their capacity), so the measured run uses no id twice.
        var warmAt = T0.AddDays(1);
        var warm = Reservations("warm");
        Assert.Equal(2 * warm.Length, CreateAndRelease(shard, fx, warm, warmAt));
        var measuredAt = warmAt.AddDays(2);
        shard.ExpireDue(measuredAt, fx);
        shard.Prune(measuredAt, fx);
        fx.Clear();

        // The commands are built before the measured region, as the host builds them on request threads.
        var commands = Reservations("m");
        var before = GC.GetAllocatedBytesForCurrentThread();
        var decided = CreateAndRelease(shard, fx, commands, measuredAt);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        var perDecision = (double)allocated / (2 * commands.Length);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Reservation create + release: {perDecision:F1} B per decision ({allocated:N0} B over {commands.Length:N0} pairs); budget {ReservationBytesPerDecisionBudget} B."));
        Assert.Equal(2 * commands.Length, decided);
        Assert.Equal(commands.Length, shard.ReservationCount);
        Assert.True(perDecision <= ReservationBytesPerDecisionBudget,
            $"Reservation create + release allocated {perDecision:F1} B per decision; the budget is {ReservationBytesPerDecisionBudget} B. Something new allocates on the hot path.");
    }

    /// <summary>Creates and releases each reservation; returns how many of those decisions succeeded.</summary>
    /// <remarks>Counts rather than asserts inside the loop, because an assertion allocates and would be measured.</remarks>
    private static int CreateAndRelease(Shard shard, Effects fx, CreateReservation[] commands, DateTimeOffset now)
    {
        var succeeded = 0;
        for (var i = 0; i < commands.Length; i++)
        {
            if (shard.CreateReservation(commands[i], now, fx).Result == ReservationResult.Created)
            {
                succeeded++;
            }
            if (shard.ReleaseReservation(commands[i].ReservationId, now, "corr", fx).Result == ReservationResult.Changed)
            {
                succeeded++;
            }
            if (i % BatchSize == BatchSize - 1)
            {
                // The host clears the effects buffer after every group commit.
                fx.Clear();
            }
        }
        fx.Clear();
        return succeeded;
    }

    /// <summary>One-line holds of one unit, sourced from the channel's list, spread evenly over the SKUs.</summary>
    private static CreateReservation[] Reservations(string prefix)
    {
        var commands = new CreateReservation[Decisions / 2];
        for (var i = 0; i < commands.Length; i++)
        {
            var id = string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i}");
            commands[i] = new CreateReservation
            {
                ReservationId = id,
                ChannelId = "web",
                TtlSeconds = Limits.TtlSecondsDefault,
                CorrelationId = "corr",
                Lines = [new ReservationLineRequest(string.Create(CultureInfo.InvariantCulture, $"SKU-{i % (Positions / Locations.Length)}"), 1, null)],
                Fingerprint = new Fingerprint((ulong)id.GetHashCode(StringComparison.Ordinal), 1),
            };
        }
        return commands;
    }

    /// <summary>Received and sold events of one unit, spread evenly over the positions, after <paramref name="from"/>.</summary>
    private static StockEvent[] Movements(string prefix, DateTimeOffset from)
    {
        var events = new StockEvent[Decisions];
        for (var i = 0; i < Decisions; i++)
        {
            events[i] = Event(string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i}"), i % 2 == 0 ? EventType.Received : EventType.Sold,
                i % Positions, 1, from.AddMilliseconds(i + 1));
        }
        return events;
    }

    private static StockEvent Event(string id, EventType type, int position, long quantity, DateTimeOffset at) => new()
    {
        EventId = id,
        Type = type,
        Sku = string.Create(CultureInfo.InvariantCulture, $"SKU-{position / Locations.Length}"),
        LocationId = Locations[position % Locations.Length],
        Quantity = quantity,
        OccurredAt = at,
        Source = "pos",
        CorrelationId = "corr",
        Fingerprint = new Fingerprint((ulong)id.GetHashCode(StringComparison.Ordinal), (ulong)quantity),
    };

    private static void Apply(Shard shard, Effects fx, StockEvent e, DateTimeOffset now)
    {
        Assert.Equal(EventStatus.Applied, shard.ApplyEvent(e, now, fx).Status);
        if (fx.Ledger.Count >= BatchSize)
        {
            fx.Clear();
        }
    }
}
