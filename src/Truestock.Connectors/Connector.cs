using System.Text.Json;

namespace Truestock.Connectors;

/// <summary>One available-to-sell quantity to publish to a channel.</summary>
/// <param name="Sku">The hub's SKU (connectors map it to the channel's own listing ids).</param>
/// <param name="Quantity">The quantity the channel must show (never negative).</param>
/// <param name="Version">
/// Monotonically increasing per (channel, SKU): a publication with a lower version must never
/// overwrite one with a higher version at the channel.
/// </param>
/// <param name="Urgent">True when the change reduces ATS to zero or below the channel's low-stock threshold.</param>
public sealed record AtsUpdate(string Sku, long Quantity, long Version, bool Urgent);

/// <summary>How the channel took one update.</summary>
public enum PublishStatus
{
    /// <summary>The channel acknowledged the quantity.</summary>
    Accepted,
    /// <summary>A failure worth retrying later (timeout, 5xx, throttled beyond the connector's own retries).</summary>
    Transient,
    /// <summary>A failure no retry will fix (unknown listing, auth failure, validation error): dead-letter it.</summary>
    Permanent,
}

/// <summary>The result of one update.</summary>
/// <param name="Sku">The SKU of the update.</param>
/// <param name="Version">The version of the update.</param>
/// <param name="Status">Accepted, transient or permanent failure.</param>
/// <param name="Error">The channel's own error (code and message) for failures; null when accepted.</param>
public sealed record PublishOutcome(string Sku, long Version, PublishStatus Status, string? Error = null);

/// <summary>Counters a connector keeps for the hub's metrics (read with <see cref="Interlocked"/>).</summary>
public sealed class ConnectorCounters
{
    /// <summary>HTTP calls made to the channel.</summary>
    public long Calls;
    /// <summary>Calls the channel answered with a throttle signal (429, THROTTLED, QuotaExceeded).</summary>
    public long Throttles;
    /// <summary>Calls that failed (transport errors, 5xx, 4xx other than throttles).</summary>
    public long Failures;
}

/// <summary>
/// Publishes available-to-sell quantities to one channel in its own wire format. A connector keeps
/// to the channel's documented rate limits itself (it waits for its token or cost bucket before
/// each call, honours Retry-After and the channel's throttle signals, and backs off with jitter),
/// so the hub's publisher only decides what to send and in which order.
/// </summary>
public interface IChannelConnector : IAsyncDisposable
{
    /// <summary>The largest number of updates one <see cref="PublishAsync"/> call takes.</summary>
    int BatchSizeMax { get; }

    /// <summary>Counters for metrics.</summary>
    ConnectorCounters Counters { get; }

    /// <summary>
    /// Publishes a batch (at most <see cref="BatchSizeMax"/> updates, at most one per SKU, urgent
    /// ones first). Returns one outcome per update. Throws only for bugs and cancellation; channel
    /// failures are outcomes.
    /// </summary>
    Task<IReadOnlyList<PublishOutcome>> PublishAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken cancellationToken);
}

/// <summary>What a connector gets from the hub.</summary>
/// <param name="ChannelId">The hub's channel id (for logs and error messages).</param>
/// <param name="Http">An HttpClient for the channel's API (no base address; connectors build absolute URLs).</param>
/// <param name="Time">The clock for rate limiting and backoff.</param>
/// <param name="Credential">
/// Looks up a named secret of the channel's credential set (configuration
/// <c>Truestock:Credentials:{set}:{name}</c> or the environment variable
/// <c>Truestock__Credentials__{set}__{name}</c>); null when absent. Secrets are never logged.
/// </param>
public sealed record ConnectorContext(string ChannelId, HttpClient Http, TimeProvider Time, Func<string, string?> Credential);

/// <summary>Creates connectors from a channel's <c>connector</c> JSON (<c>{"kind": ..., ...}</c>).</summary>
public static class ConnectorFactory
{
    /// <summary>The connector kinds this build supports.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["shopify", "amazon", "walmart", "webhook"];

    /// <summary>Returns an error message when the connector JSON is not valid, or null.</summary>
    public static string? Validate(JsonElement connector)
    {
        if (connector.ValueKind != JsonValueKind.Object)
        {
            return "must be a JSON object with a \"kind\".";
        }
        if (!connector.TryGetProperty("kind", out var kind) || kind.ValueKind != JsonValueKind.String)
        {
            return $"needs a \"kind\": one of {string.Join(", ", Kinds)}.";
        }
        return kind.GetString() switch
        {
            "shopify" => Shopify.ShopifyConnector.Validate(connector),
            "amazon" => Amazon.AmazonConnector.Validate(connector),
            "walmart" => Walmart.WalmartConnector.Validate(connector),
            "webhook" => Webhook.WebhookConnector.Validate(connector),
            var other => $"kind '{other}' is not supported; use one of {string.Join(", ", Kinds)}.",
        };
    }

    /// <summary>Creates the connector for valid connector JSON (see <see cref="Validate"/>).</summary>
    public static IChannelConnector Create(JsonElement connector, ConnectorContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var error = Validate(connector);
        if (error is not null)
        {
            throw new ArgumentException($"Invalid connector settings for channel '{context.ChannelId}': {error}", nameof(connector));
        }
        return connector.GetProperty("kind").GetString() switch
        {
            "shopify" => Shopify.ShopifyConnector.Create(connector, context),
            "amazon" => Amazon.AmazonConnector.Create(connector, context),
            "walmart" => Walmart.WalmartConnector.Create(connector, context),
            _ => Webhook.WebhookConnector.Create(connector, context),
        };
    }
}
