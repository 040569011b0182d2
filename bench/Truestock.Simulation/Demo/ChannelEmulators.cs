using System.Security.Cryptography;
using Truestock.Connectors.Emulators;

namespace Truestock.Simulation.Demo;

/// <summary>
/// The four channel emulators of the demo, each an in-process server on a free loopback port. They
/// are emulators, not Shopify, Amazon or Walmart: nothing leaves this machine. Each run gets its own
/// random secrets, which reach the hub as configuration (as real credentials would), never as JSON.
/// </summary>
internal sealed class ChannelEmulators : IAsyncDisposable
{
    private readonly string _shopifyToken = "shpat_" + Secret();
    private readonly string _amazonClientSecret = "amzn1.oa2-cs.v1." + Secret();
    private readonly string _amazonRefreshToken = "Atzr|" + Secret();
    private readonly string _walmartClientId = "demo-" + Secret();
    private readonly string _walmartClientSecret = Secret();
    private readonly string _webhookSecret = Secret();

    private ChannelEmulators()
    {
    }

    public ShopifyEmulator Shopify { get; private set; } = null!;
    public AmazonEmulator Amazon { get; private set; } = null!;
    public WalmartEmulator Walmart { get; private set; } = null!;
    public WebhookEmulator Webhook { get; private set; } = null!;

    /// <summary>Starts the emulators. Limits are the channels' documented ones; only processing delays are shortened (see below).</summary>
    public static async Task<ChannelEmulators> StartAsync()
    {
        var emulators = new ChannelEmulators();
        try
        {
            emulators.Shopify = await ShopifyEmulator.StartAsync(new ShopifyEmulatorOptions
            {
                AccessToken = emulators._shopifyToken,
                LocationName = "Truestock demo warehouse",
            });
            emulators.Amazon = await AmazonEmulator.StartAsync(new AmazonEmulatorOptions
            {
                ClientSecret = emulators._amazonClientSecret,
                RefreshToken = emulators._amazonRefreshToken,
                // Amazon processes a listings feed in minutes; the demo has one minute, so the
                // emulator takes 6 seconds. Every rate limit stays Amazon's documented one.
                FeedProcessingDelay = TimeSpan.FromSeconds(6),
            });
            emulators.Walmart = await WalmartEmulator.StartAsync(new WalmartEmulatorOptions
            {
                ClientId = emulators._walmartClientId,
                ClientSecret = emulators._walmartClientSecret,
            });
            emulators.Webhook = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions
            {
                Secret = emulators._webhookSecret,
                // A portal that only knows the catalogue it was given, and takes 10 requests a second.
                RequireListings = true,
                RequestsPerWindow = 10,
                RateWindow = TimeSpan.FromSeconds(1),
            });
        }
        catch
        {
            await emulators.DisposeAsync();
            throw;
        }
        return emulators;
    }

    /// <summary>Creates a listing for every SKU in every emulator, showing <paramref name="shown"/>(channel, SKU) until the hub publishes.</summary>
    public void AddListings(IEnumerable<string> skus, Func<string, string, long> shown)
    {
        foreach (var sku in skus)
        {
            Shopify.AddListing(sku, shown("web", sku));
            Amazon.AddListing(sku, shown("amazon", sku));
            Walmart.AddListing(sku, shown("walmart", sku));
            Webhook.AddListing(sku, shown("b2b", sku));
        }
    }

    /// <summary>
    /// The credentials as hub configuration (<c>--Truestock:Credentials:{set}:{name}=value</c>), one set
    /// per channel (named after it). They are passed to the in-process hub, not put on a command line.
    /// </summary>
    public IEnumerable<string> CredentialArgs()
    {
        yield return $"--Truestock:Credentials:web:accessToken={_shopifyToken}";
        yield return $"--Truestock:Credentials:amazon:clientId={Amazon.Options.ClientId}";
        yield return $"--Truestock:Credentials:amazon:clientSecret={_amazonClientSecret}";
        yield return $"--Truestock:Credentials:amazon:refreshToken={_amazonRefreshToken}";
        yield return $"--Truestock:Credentials:walmart:clientId={_walmartClientId}";
        yield return $"--Truestock:Credentials:walmart:clientSecret={_walmartClientSecret}";
        yield return $"--Truestock:Credentials:b2b:secret={_webhookSecret}";
    }

    public async ValueTask DisposeAsync()
    {
        // Each one may be missing when start-up failed half-way.
        if (Webhook is not null)
        {
            await Webhook.DisposeAsync();
        }
        if (Walmart is not null)
        {
            await Walmart.DisposeAsync();
        }
        if (Amazon is not null)
        {
            await Amazon.DisposeAsync();
        }
        if (Shopify is not null)
        {
            await Shopify.DisposeAsync();
        }
    }

    private static string Secret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
}
