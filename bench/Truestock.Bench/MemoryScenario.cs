using System.Globalization;
using Truestock.Core;

namespace Truestock.Bench;

/// <summary>Managed bytes per position, measured three ways.</summary>
public sealed record MemoryResult(
    long Positions,
    double BytesPerPositionWithIdempotency,
    double BytesPerPositionWithHistory,
    double BytesPerPositionCounted,
    double Seconds);

/// <summary>
/// Bytes per position: an in-process shard is filled with one event per position, and the managed
/// heap is measured before and after with full collections (GC.GetTotalMemory(true)). Three
/// figures, because a position's cost depends on how it was made:
/// <list type="bullet">
/// <item>received, with the event ids still remembered for idempotency (what the hub holds for 30 days after the events);</item>
/// <item>received, after the ids are forgotten: the position plus its movement history (kept for late counts);</item>
/// <item>counted, after the ids are forgotten: the position alone, as a stock take leaves no movement history.</item>
/// </list>
/// </summary>
public static class MemoryScenario
{
    public static MemoryResult Run(int skus, int locationCount)
    {
        var start = DateTimeOffset.UtcNow;
        var locations = EngineWorld.Locations(locationCount);
        var positions = (long)skus * locationCount;
        var (withIds, withHistory) = Measure(skus, locations, EventType.Received, forget: true);
        var (_, counted) = Measure(skus, locations, EventType.Counted, forget: true);
        return new MemoryResult(positions, withIds / positions, withHistory / positions, counted / positions,
            (DateTimeOffset.UtcNow - start).TotalSeconds);
    }

    private static (double Bytes, double AfterForgetting) Measure(int skus, string[] locations, EventType type, bool forget)
    {
        // Only the shard may survive between the two readings, so everything else is made and dropped in chunks.
        var shard = new Shard(1);
        foreach (var l in locations)
        {
            shard.PutLocation(new Location(l, l, LocationType.Warehouse));
        }
        var fx = new Effects();
        var now = EngineWorld.T0;
        const int chunk = 10_000;
        var chunkEvents = new StockEvent[chunk * locations.Length];
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (var s0 = 0; s0 < skus; s0 += chunk)
        {
            var n = 0;
            for (var s = s0; s < Math.Min(skus, s0 + chunk); s++)
            {
                var sku = EngineWorld.Sku(s);
                foreach (var l in locations)
                {
                    chunkEvents[n++] = EngineWorld.Event(string.Create(CultureInfo.InvariantCulture, $"m-{s}-{l}"), type, sku, l, 100, now);
                }
            }
            for (var i = 0; i < n; i++)
            {
                shard.ApplyEvent(chunkEvents[i], now, fx);
                if (fx.Ledger.Count >= 4096)
                {
                    fx.Clear();
                }
            }
            Array.Clear(chunkEvents);
            if (s0 % 500_000 == 0 && s0 > 0)
            {
                Log.Line($"memory: {shard.PositionCount:N0} positions");
            }
        }
        fx.Clear();
        var after = GC.GetTotalMemory(forceFullCollection: true);
        var afterForgetting = double.NaN;
        if (forget)
        {
            shard.Prune(now.AddDays(2), fx);
            fx.Clear();
            // A dictionary keeps its capacity after removals, so the shard is rebuilt from its own
            // export: what remains is what a hub holds for these positions once the ids are forgotten.
            shard = Shard.Import(shard.Export(), 1);
            afterForgetting = GC.GetTotalMemory(forceFullCollection: true) - before;
        }
        GC.KeepAlive(shard);
        GC.KeepAlive(fx);
        GC.KeepAlive(chunkEvents);
        return (after - before, afterForgetting);
    }
}
