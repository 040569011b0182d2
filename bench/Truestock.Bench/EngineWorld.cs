using System.Globalization;
using Truestock.Core;

namespace Truestock.Bench;

/// <summary>Builds shards, events and reservation commands for the in-process scenarios.</summary>
public static class EngineWorld
{
    public static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static string Sku(int i) => string.Create(CultureInfo.InvariantCulture, $"S{i}");

    public static string[] Locations(int count) =>
        Enumerable.Range(1, count).Select(i => string.Create(CultureInfo.InvariantCulture, $"L{i:D2}")).ToArray();

    /// <summary>A shard with the locations, one channel sourcing all of them, and <paramref name="stock"/> units at every position.</summary>
    public static Shard Create(int skus, string[] locations, long stock, int retentionDays = 1)
    {
        var shard = new Shard(retentionDays);
        foreach (var l in locations)
        {
            shard.PutLocation(new Location(l, l, LocationType.Warehouse));
        }
        shard.PutChannel(new Channel("web", "web", locations, 100, 0, null, null));
        var fx = new Effects();
        var n = 0;
        for (var s = 0; s < skus; s++)
        {
            var sku = Sku(s);
            foreach (var l in locations)
            {
                // A count sets the quantity without starting a movement history, as a stock take would.
                shard.ApplyEvent(Event(string.Create(CultureInfo.InvariantCulture, $"seed-{n++}"), EventType.Counted, sku, l, stock, T0), T0, fx);
                if (fx.Ledger.Count >= 4096)
                {
                    fx.Clear();
                }
            }
        }
        // Forget the seed ids, so that only positions are left in memory.
        shard.Prune(T0.AddDays(retentionDays + 1), fx);
        return shard;
    }

    public static StockEvent Event(string id, EventType type, string sku, string location, long quantity, DateTimeOffset at) => new()
    {
        EventId = id,
        Type = type,
        Sku = sku,
        LocationId = location,
        Quantity = quantity,
        OccurredAt = at,
        Source = "bench",
        CorrelationId = "bench",
        Fingerprint = new Fingerprint((ulong)id.GetHashCode(StringComparison.Ordinal), (ulong)quantity),
    };

    public static CreateReservation Reservation(string id, string sku, long quantity) => new()
    {
        ReservationId = id,
        ChannelId = "web",
        TtlSeconds = Limits.TtlSecondsDefault,
        CorrelationId = "bench",
        Lines = [new ReservationLineRequest(sku, quantity, null)],
        Fingerprint = new Fingerprint((ulong)id.GetHashCode(StringComparison.Ordinal), 7),
    };
}
