using System.Diagnostics;
using System.Globalization;
using Truestock.Core;

namespace Truestock.Bench;

/// <summary>Decisions per second and bytes allocated per decision of one in-process loop.</summary>
public sealed record EngineLoopResult(string Name, long Decisions, double Seconds, double AllocatedBytesPerDecision, double MaintenanceSeconds)
{
    public double PerSecond => Decisions / Seconds;
}

/// <summary>
/// The engine alone on one thread (one core), timed with a Stopwatch: what the sequencing loop
/// could decide if nothing else cost anything. Commands are built before the clock starts, as
/// the host builds them on request threads. Between rounds the shard forgets ended reservations
/// and old event ids (Prune) and expires its queue, so rounds can reuse ids and memory stays
/// flat; that upkeep is timed separately and reported beside the decisions.
/// </summary>
public static class EngineLoop
{
    private const int Skus = 10_000;
    private const int PerRound = 100_000;
    private const int BatchSize = 4096;
    private const int RoundsMax = 1_000;

    public static EngineLoopResult Reservations(TimeSpan duration)
    {
        var locations = EngineWorld.Locations(3);
        var shard = EngineWorld.Create(Skus, locations, stock: 1_000_000_000);
        var fx = new Effects();
        var commands = new CreateReservation[PerRound];
        for (var i = 0; i < PerRound; i++)
        {
            commands[i] = EngineWorld.Reservation(string.Create(CultureInfo.InvariantCulture, $"r{i}"), EngineWorld.Sku(i % Skus), 1);
        }
        var now = EngineWorld.T0.AddDays(10);
        long decideTicks = 0, upkeepTicks = 0, decisions = 0, allocated = 0;
        // The first round warms the JIT and grows every collection to its working size; it is not counted.
        for (var round = 0; round <= RoundsMax && (round < 3 || Stopwatch.GetElapsedTime(0, decideTicks) < duration); round++)
        {
            var counted = round > 0;
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < PerRound; i++)
            {
                shard.CreateReservation(commands[i], now, fx);
                shard.ReleaseReservation(commands[i].ReservationId, now, "bench", fx);
                if ((i & (BatchSize - 1)) == BatchSize - 1)
                {
                    // The host clears the effects buffer after every group commit.
                    fx.Clear();
                }
            }
            var ticks = Stopwatch.GetTimestamp() - start;
            if (counted)
            {
                decisions += 2L * PerRound;
                allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
                decideTicks += ticks;
            }
            var upkeepStart = Stopwatch.GetTimestamp();
            now = now.AddDays(2);
            shard.ExpireDue(now, fx);
            shard.Prune(now, fx);
            fx.Clear();
            if (counted)
            {
                upkeepTicks += Stopwatch.GetTimestamp() - upkeepStart;
            }
        }
        return new EngineLoopResult("reservation create + release", decisions, decideTicks / (double)Stopwatch.Frequency, (double)allocated / decisions, upkeepTicks / (double)Stopwatch.Frequency);
    }

    public static EngineLoopResult Events(TimeSpan duration)
    {
        var locations = EngineWorld.Locations(3);
        var shard = EngineWorld.Create(Skus, locations, stock: 1_000_000_000);
        var positions = Skus * locations.Length;
        var fx = new Effects();
        var ids = Enumerable.Range(0, PerRound).Select(i => string.Create(CultureInfo.InvariantCulture, $"e{i}")).ToArray();
        var now = EngineWorld.T0.AddDays(10);
        long decideTicks = 0, upkeepTicks = 0, decisions = 0, allocated = 0;
        for (var round = 0; round <= RoundsMax && (round < 3 || Stopwatch.GetElapsedTime(0, decideTicks) < duration); round++)
        {
            var counted = round > 0;
            // Movements happen after the round's count, so they are applied and remembered for late counts.
            var events = new StockEvent[PerRound];
            for (var i = 0; i < PerRound; i++)
            {
                var p = i % positions;
                events[i] = EngineWorld.Event(ids[i], i % 2 == 0 ? EventType.Received : EventType.Sold, EngineWorld.Sku(p / locations.Length),
                    locations[p % locations.Length], 1, now.AddTicks(i + 1));
            }
            var bytes = GC.GetAllocatedBytesForCurrentThread();
            var start = Stopwatch.GetTimestamp();
            for (var i = 0; i < PerRound; i++)
            {
                shard.ApplyEvent(events[i], now, fx);
                if ((i & (BatchSize - 1)) == BatchSize - 1)
                {
                    fx.Clear();
                }
            }
            var ticks = Stopwatch.GetTimestamp() - start;
            if (counted)
            {
                decisions += PerRound;
                allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
                decideTicks += ticks;
            }
            // Upkeep: a count per position (a daily stock take) drops the movement history, and
            // Prune forgets this round's ids so the next round can use them again.
            var upkeepStart = Stopwatch.GetTimestamp();
            var countAt = now.AddHours(1);
            for (var p = 0; p < positions; p++)
            {
                shard.ApplyEvent(EngineWorld.Event(string.Create(CultureInfo.InvariantCulture, $"c{round}-{p}"), EventType.Counted,
                    EngineWorld.Sku(p / locations.Length), locations[p % locations.Length], 1_000_000_000, countAt), now, fx);
                if ((p & (BatchSize - 1)) == BatchSize - 1)
                {
                    fx.Clear();
                }
            }
            now = now.AddDays(2);
            shard.Prune(now, fx);
            fx.Clear();
            if (counted)
            {
                upkeepTicks += Stopwatch.GetTimestamp() - upkeepStart;
            }
        }
        return new EngineLoopResult("event received / sold", decisions, decideTicks / (double)Stopwatch.Frequency, (double)allocated / decisions, upkeepTicks / (double)Stopwatch.Frequency);
    }
}
