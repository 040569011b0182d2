using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// The channel emulators, one per connector kind, configured for pipeline tests: limits as
/// documented, except windows scaled down where the documented one (Walmart: 10 feeds an hour;
/// Amazon: 5 feeds in 5 minutes) would make a test take that long, with the connector's budget
/// scaled to match. Credentials go to the hub as configuration of the credential set "web".
/// </summary>
internal static class ChannelEmulators
{
    public static readonly string[] Kinds = ["webhook", "walmart", "shopify", "amazon"];

    /// <summary>An emulator of one kind, seen through what the test needs.</summary>
    public sealed record Emulated(
        Dictionary<string, object?> Connector,
        string[] CredentialArgs,
        Action<string> AddListing,
        Func<string, long?> QuantityOf,
        Func<long> Requests,
        Func<long> Throttled,
        EmulatorFaults Faults,
        IAsyncDisposable Owner);

    public static async Task<Emulated> Start(string kind)
    {
        switch (kind)
        {
            case "webhook":
            {
                var e = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = "hook-secret", RequestsPerWindow = 400 });
                return new Emulated(
                    new() { ["kind"] = "webhook", ["url"] = e.Url.ToString(), ["requestsPerSecondMax"] = 200 },
                    ["--Truestock:Credentials:web:secret=hook-secret"],
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e.Faults, e);
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
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e.Faults, e);
            }
            case "shopify":
            {
                var e = await ShopifyEmulator.StartAsync(new ShopifyEmulatorOptions());
                return new Emulated(
                    new() { ["kind"] = "shopify", ["baseUrl"] = e.BaseAddress.ToString(), ["locationId"] = e.LocationId },
                    ["--Truestock:Credentials:web:accessToken=shpat_emulator_token"],
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e.Faults, e);
            }
            case "amazon":
            {
                // Feeds are budgeted at 5 per 5 minutes; scaled to 1 a second here, with the connector told the same.
                var e = await AmazonEmulator.StartAsync(new AmazonEmulatorOptions
                {
                    CreateFeed = new AmazonRateLimit(1, 15),
                    JsonListingsFeedSubmissions = new AmazonRateLimit(1, 5),
                    FeedProcessingDelay = TimeSpan.FromMilliseconds(200),
                });
                return new Emulated(
                    new()
                    {
                        ["kind"] = "amazon", ["baseUrl"] = e.BaseAddress.ToString(), ["tokenUrl"] = e.TokenUrl.ToString(),
                        ["sellerId"] = e.Options.SellerId, ["marketplaceIds"] = e.Options.MarketplaceIds, ["credentials"] = "web",
                        ["feedRatePerSecond"] = 1, ["feedPollSeconds"] = 0.1,
                    },
                    [
                        $"--Truestock:Credentials:web:clientId={e.Options.ClientId}",
                        $"--Truestock:Credentials:web:clientSecret={e.Options.ClientSecret}",
                        $"--Truestock:Credentials:web:refreshToken={e.Options.RefreshToken}",
                    ],
                    sku => e.AddListing(sku), e.QuantityOf, () => e.Requests, () => e.ThrottledResponses, e.Faults, e);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "No emulator for this kind.");
        }
    }
}
