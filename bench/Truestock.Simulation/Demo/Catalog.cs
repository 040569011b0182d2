using System.Text.Json.Nodes;

namespace Truestock.Simulation.Demo;

/// <summary>A location of the demo retailer.</summary>
internal sealed record DemoLocation(string Id, string Name, string Type);

/// <summary>
/// A channel of the demo retailer. <paramref name="Connector"/> is the channel's connector JSON (null for
/// the store tills, which read ATS but publish nowhere); <paramref name="Shows"/> reads the quantity the
/// channel's emulator currently shows for a SKU.
/// </summary>
internal sealed record DemoChannel(
    string Id, string Name, string? Emulator, string[] Locations, int AllocationPercent, int BufferUnits, long? MaxQuantity,
    JsonObject? Connector, Func<string, long?>? Shows, Func<long>? EmulatorRequests, Func<long>? EmulatorThrottles, string? Limits = null)
{
    public bool Connected => Connector is not null;

    /// <summary>The body of <c>PUT /v1/channels/{id}</c>.</summary>
    public JsonObject Declaration()
    {
        var body = new JsonObject
        {
            ["name"] = Name,
            ["locations"] = new JsonArray([.. Locations.Select(l => (JsonNode)l)]),
            ["allocationPercent"] = AllocationPercent,
            ["bufferUnits"] = BufferUnits,
        };
        if (MaxQuantity is { } max)
        {
            body["maxQuantity"] = max;
        }
        if (Connector is not null)
        {
            body["connector"] = Connector.DeepClone();
        }
        return body;
    }
}

/// <summary>
/// The demo retailer's master data: three stores, a warehouse and a 3PL, 50 SKUs of a clothing
/// brand, four connected channels (one per emulator) and a till channel per store. The channel
/// settings are chosen so that each feature of the publisher has something to do within a minute.
/// </summary>
internal static class Catalog
{
    public static readonly DemoLocation[] Locations =
    [
        new("S1", "Store Market Street (flagship, ships web orders)", "store"),
        new("S2", "Store Canal Street", "store"),
        new("S3", "Store Harbour Mall", "store"),
        new("WH1", "Central warehouse", "warehouse"),
        new("3PL1", "Marketplace fulfilment partner (3PL)", "3pl"),
    ];

    public static readonly string[] Stores = ["S1", "S2", "S3"];

    /// <summary>50 SKUs: product, colour or fit, size.</summary>
    public static readonly string[] Skus =
    [
        .. Sizes("TEE-BLK", "S", "M", "L", "XL"), .. Sizes("TEE-WHT", "S", "M", "L", "XL"), .. Sizes("TEE-NVY", "S", "M", "L", "XL"),
        .. Sizes("HOODIE-GRY", "S", "M", "L", "XL"), .. Sizes("HOODIE-BLK", "S", "M", "L", "XL"),
        .. Sizes("JEANS-SLIM", "30", "32", "34", "36"), .. Sizes("JEANS-REG", "30", "32", "34", "36"),
        .. Sizes("SNEAKER-WHT", "41", "42", "43", "44", "45", "46"),
        .. Sizes("JACKET-OLV", "S", "M", "L", "XL"),
        "CAP-BLK", "CAP-RED", "CAP-KHK", "BEANIE-GRY", "BEANIE-NVY", "BEANIE-MUS", "SCARF-RED", "SCARF-GRY",
        "SOCKS-3PK-BLK", "SOCKS-3PK-WHT", "BELT-BRN", "TOTE-NAT",
    ];

    /// <summary>The channels, wired to the running emulators.</summary>
    public static DemoChannel[] Channels(ChannelEmulators emulators)
    {
        var shopify = emulators.Shopify;
        var amazon = emulators.Amazon;
        var walmart = emulators.Walmart;
        var webhook = emulators.Webhook;
        return
        [
            // The web shop ships from the warehouse, the 3PL and every store. Urgent below 5 units:
            // the last units reach the shop first. Its velocity-aware buffer withholds what sells
            // while a change travels to the shop (until the hub has measured the delay, 10 s is
            // assumed). A velocity buffer belongs on a channel that sources every location where the
            // SKU sells: a sale elsewhere raises the buffer without republishing the channel (reported).
            new("web", "Web shop", "Shopify emulator", ["WH1", "3PL1", "S1", "S2", "S3"], 100, 1, null,
                new JsonObject
                {
                    ["kind"] = "shopify",
                    ["baseUrl"] = shopify.BaseAddress.ToString(),
                    ["locationId"] = shopify.LocationId,
                    ["credentials"] = "web",
                    ["lowStockThreshold"] = 5,
                    ["velocityBuffer"] = new JsonObject { ["maxUnits"] = 8, ["delaySecondsInitial"] = 10 },
                },
                shopify.QuantityOf, () => shopify.Requests, () => shopify.ThrottledResponses, "100 cost points/s"),

            // Amazon is the slowest channel (5 item updates a second, a few feeds, minutes per feed at
            // the real one): when changes wait longer than 20 s, degraded mode withholds 1 unit + 5%.
            new("amazon", "Amazon", "Amazon emulator", ["3PL1", "WH1"], 100, 0, null,
                new JsonObject
                {
                    ["kind"] = "amazon",
                    ["sellerId"] = amazon.Options.SellerId,
                    ["marketplaceIds"] = new JsonArray([.. amazon.Options.MarketplaceIds.Select(m => (JsonNode)m)]),
                    ["baseUrl"] = amazon.BaseAddress.ToString(),
                    ["tokenUrl"] = amazon.TokenUrl.ToString(),
                    ["credentials"] = "amazon",
                    // Feeds for full resynchronisations (the emulator finishes one in 6 s, checked every
                    // second); day-to-day changes go item by item, urgent ones first.
                    ["feedPollSeconds"] = 1,
                    ["feedWaitSecondsMax"] = 20,
                    ["lowStockThreshold"] = 5,
                    ["degradation"] = new JsonObject { ["lagSecondsMax"] = 20, ["bufferUnits"] = 1, ["bufferPercent"] = 5 },
                },
                amazon.QuantityOf, () => amazon.Requests, () => amazon.ThrottledResponses, "5 items/s, 5 feeds then 1 per 2 min"),

            // Walmart allows 200 item updates a minute and 10 feeds an hour: once the first minute's
            // budget is spent its backlog grows, and degraded mode withholds 2 units + 10% until it has
            // caught up. (No backlogMax: the opening stock alone is a backlog of every SKU.)
            new("walmart", "Walmart", "Walmart emulator", ["WH1", "3PL1"], 100, 0, 30,
                new JsonObject
                {
                    ["kind"] = "walmart",
                    ["baseUrl"] = walmart.BaseAddress.ToString(),
                    ["credentials"] = "walmart",
                    ["feedPollIntervalSeconds"] = 1,
                    ["lowStockThreshold"] = 3,
                    ["degradation"] = new JsonObject { ["lagSecondsMax"] = 15, ["bufferUnits"] = 2, ["bufferPercent"] = 10 },
                },
                walmart.QuantityOf, () => walmart.Requests, () => walmart.ThrottledResponses, "200 items/min, 10 feeds/h"),

            // Business customers see 30% of the warehouse, through a signed webhook. The portal takes
            // 10 requests per fixed second; the connector keeps to 8 a second, but its token bucket
            // allows a short burst, so now and then a 429 shows how it backs off (see "throttles").
            new("b2b", "B2B portal", "webhook emulator", ["WH1"], 30, 2, null,
                new JsonObject
                {
                    ["kind"] = "webhook",
                    ["url"] = webhook.Url.ToString(),
                    ["credentials"] = "b2b",
                    ["requestsPerSecondMax"] = 8,
                    ["lowStockThreshold"] = 2,
                },
                webhook.QuantityOf, () => webhook.Requests, () => webhook.ThrottledResponses, "10 requests/s"),

            // The tills read their own store's ATS; no connector.
            .. Stores.Select(s => new DemoChannel($"pos-{s}", $"Till {s}", null, [s], 100, 0, null, null, null, null, null)),
        ];
    }

    /// <summary>Opening stock per (SKU, location), seeded: the warehouse holds most, the stores a shelf's worth.</summary>
    public static IEnumerable<(string Sku, string Location, int Quantity)> OpeningStock(Random random)
    {
        foreach (var sku in Skus)
        {
            yield return (sku, "WH1", random.Next(25, 70));
            yield return (sku, "3PL1", random.Next(8, 30));
            foreach (var store in Stores)
            {
                yield return (sku, store, random.Next(3, 10));
            }
        }
    }

    private static IEnumerable<string> Sizes(string product, params string[] sizes) => sizes.Select(s => $"{product}-{s}");
}
