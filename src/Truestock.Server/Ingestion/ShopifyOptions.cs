namespace Truestock.Server.Ingestion;

/// <summary>
/// The Shopify shops that may send webhooks, bound from <c>Truestock:ShopifySources:{sourceId}</c>.
/// The webhook secret is deliberately not a member: it is read from
/// <c>Truestock:Credentials:{set}:webhookSecret</c> when a delivery is verified, so it never sits in
/// an options object that could be dumped, and it lives in the deployment, never in the repository.
/// </summary>
public sealed class ShopifyWebhookOptions
{
    /// <summary>One entry per shop, keyed by the source id that appears in the webhook address.</summary>
    public Dictionary<string, ShopifySourceOptions> ShopifySources { get; set; } = [];
}

/// <summary>How one Shopify shop's orders map onto the hub.</summary>
public sealed class ShopifySourceOptions
{
    /// <summary>Channel the shop's orders reserve through (required).</summary>
    public string? ChannelId { get; set; }

    /// <summary>Shopify location id (the number in the admin) → hub location id.</summary>
    public Dictionary<string, string> Locations { get; set; } = [];

    /// <summary>
    /// Hub location used when a payload names no location or an unmapped one. When absent, order
    /// lines take the first location of the channel's sourcing list with enough available.
    /// </summary>
    public string? DefaultLocationId { get; set; }

    /// <summary>Credential set holding <c>webhookSecret</c> (and, while rotating, <c>webhookSecretPrevious</c>); defaults to the source id.</summary>
    public string? Credentials { get; set; }

    /// <summary>
    /// How long a fulfillment may wait for its order's orders/create: within it the hub answers
    /// 409 so that Shopify delivers the fulfillment again later; past it the units are shipped
    /// without a reservation (see docs/ingestion.md).
    /// </summary>
    public int OrderWaitSecondsMax { get; set; } = 3600;
}
