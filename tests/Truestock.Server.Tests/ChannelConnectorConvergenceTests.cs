using System.Text.Json;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// Each connector through the whole pipeline: a burst of thousands of changes over hundreds of
/// SKUs, then a quiet period, after which the channel's emulator shows the hub's ATS for every SKU,
/// with coalesced calls and without a storm of throttles. The emulators keep the documented limits;
/// windows are scaled down where the documented one (Walmart: 10 feeds an hour) would make the
/// test take an hour, with the connector's budget scaled to match.
/// </summary>
public sealed class ChannelConnectorConvergenceTests
{
    /// <summary>An emulator of one kind, seen through what the test needs.</summary>
    private sealed record Emulated(
        Dictionary<string, object?> Connector,
        string[] CredentialArgs,
        Action<string> AddListing,
        Func<string, long?> QuantityOf,
        Func<long> Requests,
        Func<long> Throttled,
        IAsyncDisposable Owner);

    private static async Task<Emulated> Start(string kind)
    {
        switch (kind)
        {
            case "webhook":
            {
                var e = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = "hook-secret", RequestsPerWindow = 400 });
                return new Emulated(
                    new() { ["kind"] = "webhook", ["url"] = e.Url.ToString(), ["requestsPerSecondMax"] = 200 },
                    ["--Truestock:Credentials:web:secret=hook-secret"],
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e);
            }
            case "walmart":
            {
                var e = await WalmartEmulator.StartAsync(new WalmartEmulatorOptions
                {
                    FeedsPerWindow = 10,
                    FeedWindow = TimeSpan.FromSeconds(10),
                    FeedProcessingDelay = TimeSpan.FromMilliseconds(200),
                });
                return new Emulated(
                    new()
                    {
                        ["kind"] = "walmart", ["baseUrl"] = e.BaseAddress.ToString(), ["feedsPerHour"] = 3600,
                        ["feedPollIntervalSeconds"] = 0.1,
                    },
                    ["--Truestock:Credentials:web:clientId=emulator-client-id", "--Truestock:Credentials:web:clientSecret=emulator-client-secret"],
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e);
            }
            case "shopify":
            {
                var e = await ShopifyEmulator.StartAsync(new ShopifyEmulatorOptions());
                return new Emulated(
                    new() { ["kind"] = "shopify", ["baseUrl"] = e.BaseAddress.ToString(), ["locationId"] = e.LocationId },
                    ["--Truestock:Credentials:web:accessToken=shpat_emulator_token"],
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "No emulator for this kind.");
        }
    }

    [Theory]
    [InlineData("webhook")]
    [InlineData("walmart")]
    [InlineData("shopify")]
    public async Task after_a_burst_and_a_quiet_period_the_channel_shows_the_hub_ats_for_every_sku(string kind)
    {
        var emulated = await Start(kind);
        await using var _ = emulated.Owner;
        await using var hub = await HubServer.Start([.. emulated.CredentialArgs, "--Truestock:ChannelPollMilliseconds=20"]);
        var skus = Enumerable.Range(0, 200).Select(i => $"{kind.ToUpperInvariant()}-{i:D3}").ToArray();
        foreach (var sku in skus)
        {
            emulated.AddListing(sku);
        }
        await hub.Setup("web", new { connector = emulated.Connector });

        var random = new Random(11);
        var changes = 0;
        for (var batch = 0; batch < 3; batch++)
        {
            var events = Enumerable.Range(0, 1000).Select(_ => (object)(random.Next(4) == 0
                ? HubServer.Event("sold", skus[random.Next(skus.Length)], random.Next(2) == 0 ? "WH1" : "S1", random.Next(1, 3))
                : HubServer.Event("received", skus[random.Next(skus.Length)], random.Next(2) == 0 ? "WH1" : "S1", random.Next(1, 6)))).ToArray();
            await hub.Events(events);
            changes += events.Length;
        }

        // The quiet period: no more changes; the hub's clock moves so that retries come due.
        var until = DateTime.UtcNow.AddSeconds(90);
        JsonElement sync;
        while ((sync = await hub.GetJson("/v1/channels/web/sync")).Long("pending") > 0)
        {
            Assert.True(DateTime.UtcNow < until, $"{kind}: still {sync.Long("pending")} pending; last error: {(sync.TryGetProperty("lastError", out var e) ? e.GetString() : "none")}");
            await hub.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(50);
        }

        Assert.Equal(0, sync.Long("deadLetters"));
        var wrong = new List<string>();
        var view = await hub.GetJson("/v1/channels/web/availability?" + string.Join('&', skus.Select(s => "sku=" + s)));
        foreach (var item in view.GetProperty("items").EnumerateArray())
        {
            var shown = emulated.QuantityOf(item.Str("sku"));
            if (shown != item.Long("available"))
            {
                wrong.Add($"{item.Str("sku")}: hub {item.Long("available")}, channel {shown}");
            }
        }
        Assert.True(wrong.Count == 0, $"{kind}: the channel disagrees with the hub: " + string.Join("; ", wrong.Take(10)));
        Assert.True(emulated.Requests() < changes / 2, $"{kind}: {emulated.Requests()} calls for {changes} changes: not coalesced.");
        Assert.True(emulated.Throttled() <= 5, $"{kind}: {emulated.Throttled()} throttled answers: the connector did not keep to the limits.");
    }
}
