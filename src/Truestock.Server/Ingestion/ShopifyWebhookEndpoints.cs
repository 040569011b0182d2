using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>
/// POST /v1/sources/shopify/{sourceId}/webhooks: Shopify order, fulfillment and refund webhooks in.
/// The endpoint is public to Shopify and takes no API key: Shopify cannot send a bearer token,
/// and the HMAC signature it sends with every delivery authenticates the sender and the exact
/// bytes of the body, which a key would not. See docs/ingestion.md for setup and the mapping.
/// </summary>
internal static class ShopifyWebhookEndpoints
{
    /// <summary>Registers the options and services of Shopify webhooks in.</summary>
    public static IServiceCollection AddShopifyWebhooks(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<ShopifyWebhookOptions>(configuration.GetSection("Truestock"));
        services.AddSingleton<ShopifyDeliveryLog>();
        services.AddSingleton<ShopifyWebhookMetrics>();
        services.AddSingleton<ShopifyWebhookHandler>();
        services.AddSingleton<ShopifyWebhookReceiver>();
        return services;
    }

    public static void MapShopifyWebhooks(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapPost("/v1/sources/shopify/{sourceId}/webhooks",
                (string sourceId, HttpContext http, ShopifyWebhookReceiver receiver) => receiver.Receive(sourceId, http))
            .WithTags("Ingestion")
            .Accepts<JsonElement>("application/json").Produces<ShopifyWebhookReply>()
            .WithSummary("Shopify webhooks (orders/create, orders/cancelled, orders/fulfilled, orders/partially_fulfilled, " +
                "fulfillments/create, fulfillments/update, refunds/create), authenticated by X-Shopify-Hmac-Sha256 instead of an API key.");
    }
}

/// <summary>
/// The HTTP side of a Shopify delivery: the source, the size limit, the HMAC signature, the
/// delivery-id fast path and the topic; the mapping itself is <see cref="ShopifyWebhookHandler"/>'s.
/// </summary>
internal sealed class ShopifyWebhookReceiver
{
    /// <summary>Largest body accepted (1 MiB). An order with a hundred lines is well under 500 KiB.</summary>
    public const int BodyBytesMax = 1024 * 1024;

    public const string HmacHeader = "X-Shopify-Hmac-Sha256";
    public const string TopicHeader = "X-Shopify-Topic";
    public const string WebhookIdHeader = "X-Shopify-Webhook-Id";
    public const string EventIdHeader = "X-Shopify-Event-Id";

    private const int HeaderLengthMax = 128;

    private readonly Dictionary<string, (string Id, ShopifySourceOptions Options)> _sources;
    private readonly IConfiguration _configuration;
    private readonly ShopifyWebhookHandler _handler;
    private readonly ShopifyDeliveryLog _deliveries;
    private readonly ShopifyWebhookMetrics _counters;
    private readonly ILogger<ShopifyWebhookReceiver> _log;

    public ShopifyWebhookReceiver(IOptions<ShopifyWebhookOptions> options, IConfiguration configuration, ShopifyWebhookHandler handler,
        ShopifyDeliveryLog deliveries, ShopifyWebhookMetrics counters, ILogger<ShopifyWebhookReceiver> log)
    {
        // Configuration keys are case-insensitive, so the address is too; the configured spelling
        // is the one ids are derived from, so that /Shop1/ and /shop1/ make the same reservations.
        _sources = options.Value.ShopifySources.ToDictionary(kv => kv.Key, kv => (kv.Key, kv.Value), StringComparer.OrdinalIgnoreCase);
        _configuration = configuration;
        _handler = handler;
        _deliveries = deliveries;
        _counters = counters;
        _log = log;
    }

    public async Task<IResult> Receive(string sourceId, HttpContext http)
    {
        if (!_sources.TryGetValue(sourceId, out var source))
        {
            return Problems.NotFound("unknown-source", $"No Shopify source '{Printable(sourceId)}' is configured (Truestock:ShopifySources).");
        }
        var (id, settings) = source;
        var topic = Header(http, TopicHeader);
        var webhookId = Header(http, WebhookIdHeader);
        var eventId = Header(http, EventIdHeader);
        var secrets = Secrets(id, settings);
        if (secrets.Count == 0 || string.IsNullOrWhiteSpace(settings.ChannelId))
        {
            _counters.Delivery(id, ShopifyDeliveryOutcome.Misconfigured);
            _log.LogError("Shopify source {Source} has no {Missing}; its deliveries fail until it is configured (topic {Topic}, webhook {WebhookId}).",
                id, secrets.Count == 0 ? $"webhookSecret in credential set '{CredentialSet(id, settings)}'" : "ChannelId", topic, webhookId);
            http.Response.Headers.RetryAfter = "60";
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "shopify-source-misconfigured", "The Shopify source is misconfigured.",
                $"Shopify source '{id}' needs a ChannelId and the secret Truestock:Credentials:{{set}}:webhookSecret; nothing was applied.");
        }

        var body = await ReadBody(http.Request);
        if (body is null)
        {
            _counters.Delivery(id, ShopifyDeliveryOutcome.TooLarge);
            _log.LogWarning("Shopify delivery for source {Source} refused: body over {Limit} bytes (topic {Topic}, webhook {WebhookId}).",
                id, BodyBytesMax, topic, webhookId);
            return Problems.TooLarge(BodyBytesMax);
        }
        if (!Verify(body, http.Request.Headers[HmacHeader].ToString(), secrets))
        {
            _counters.Delivery(id, ShopifyDeliveryOutcome.Unauthorized);
            var missing = string.IsNullOrEmpty(http.Request.Headers[HmacHeader].ToString());
            _log.LogWarning("Shopify delivery for source {Source} refused: {Reason} (topic {Topic}, webhook {WebhookId}, event {EventId}, from {Remote}). Nothing was applied.",
                id, missing ? $"no {HmacHeader} header" : "the HMAC signature does not match", topic, webhookId, eventId, http.Connection.RemoteIpAddress);
            return new SignatureProblem(missing
                ? $"The {HmacHeader} header is missing; Shopify signs every delivery with it. Nothing was applied."
                : $"The {HmacHeader} signature does not match the body and this source's secret. Nothing was applied.");
        }
        if (topic is null)
        {
            _counters.Delivery(id, ShopifyDeliveryOutcome.Malformed);
            return Problems.Malformed($"The {TopicHeader} header is missing; it names the webhook's topic, e.g. orders/create.");
        }

        var deliveryIds = new List<string>(2);
        if (eventId is not null)
        {
            deliveryIds.Add("event:" + eventId);
        }
        if (webhookId is not null)
        {
            deliveryIds.Add("webhook:" + webhookId);
        }
        var delivery = new ShopifyDelivery(id, settings, topic, webhookId ?? "(none)", http.CorrelationId());
        if (_deliveries.Seen(id, topic, deliveryIds))
        {
            delivery.Notes.Add("This delivery was handled before; nothing was applied again.");
            return Done(delivery, ShopifyDeliveryOutcome.Duplicate);
        }

        using var document = Parse(body, out var unparsable);
        if (document is null)
        {
            _counters.Delivery(id, ShopifyDeliveryOutcome.Malformed);
            return Problems.Malformed(unparsable!);
        }
        var input = new JsonInput();
        var root = document.RootElement;
        Task<ShopifyStop?>? work = topic switch
        {
            "orders/create" or "orders/fulfilled" or "orders/partially_fulfilled" =>
                ShopifyPayloads.Order(root, input) is { } order ? _handler.Order(delivery, order, cancelled: false) : null,
            "orders/cancelled" => ShopifyPayloads.Order(root, input) is { } order ? _handler.Order(delivery, order, cancelled: true) : null,
            "fulfillments/create" or "fulfillments/update" =>
                ShopifyPayloads.Fulfillment(root, input) is { } fulfillment ? _handler.Fulfillment(delivery, fulfillment) : null,
            "refunds/create" => ShopifyPayloads.Refund(root, input) is { } refund ? _handler.Refund(delivery, refund) : null,
            _ => Task.FromResult<ShopifyStop?>(null),
        };
        if (input.Result() is { } invalid)
        {
            _counters.Delivery(id, ShopifyDeliveryOutcome.Malformed);
            _log.LogWarning("Shopify {Topic} for source {Source} is invalid: {Problems} (webhook {WebhookId}). Nothing was applied.",
                topic, id, input.Describe(), webhookId);
            return invalid;
        }
        if (work is null)
        {
            throw new InvalidOperationException($"The {topic} payload was neither parsed nor reported invalid.");
        }
        if (await work is { } stop)
        {
            _counters.Delivery(id, stop.Outcome);
            if (stop.Status == StatusCodes.Status503ServiceUnavailable)
            {
                http.Response.Headers.RetryAfter = "60";
            }
            return Problems.Create(stop.Status, stop.Slug, stop.Title, stop.Detail);
        }
        if (topic is not ("orders/create" or "orders/cancelled" or "orders/fulfilled" or "orders/partially_fulfilled"
            or "fulfillments/create" or "fulfillments/update" or "refunds/create"))
        {
            // Answered 200 so that Shopify neither retries nor counts failures toward removing the subscription.
            delivery.Notes.Add($"Topic '{topic}' changes no stock; subscribe this address to orders/*, fulfillments/* and refunds/create only.");
        }
        // Only now, with everything durable, is the delivery remembered: a delivery that failed is
        // retried by Shopify and must be decided again.
        _deliveries.Remember(id, topic, deliveryIds);
        return Done(delivery, delivery.Outcome);
    }

    private IResult Done(ShopifyDelivery delivery, ShopifyDeliveryOutcome outcome)
    {
        _counters.Delivery(delivery.SourceId, outcome);
        return Results.Ok(delivery.Reply(outcome));
    }

    private static string CredentialSet(string sourceId, ShopifySourceOptions settings) =>
        string.IsNullOrWhiteSpace(settings.Credentials) ? sourceId : settings.Credentials;

    /// <summary>
    /// The secrets a signature may be made with: the current one, and during a rotation the
    /// previous one (Shopify may sign with the old secret for up to an hour after a rotation).
    /// Read from configuration on every delivery, so environment-provided secrets never sit in options.
    /// </summary>
    private List<string> Secrets(string sourceId, ShopifySourceOptions settings)
    {
        var set = CredentialSet(sourceId, settings);
        var secrets = new List<string>(2);
        foreach (var name in new[] { "webhookSecret", "webhookSecretPrevious" })
        {
            if (_configuration[$"Truestock:Credentials:{set}:{name}"] is { Length: > 0 } secret)
            {
                secrets.Add(secret);
            }
        }
        return secrets;
    }

    /// <summary>Base64 HMAC-SHA256 of the raw body, compared in constant time with each secret's digest.</summary>
    internal static bool Verify(ReadOnlySpan<byte> body, string? signature, IReadOnlyList<string> secrets)
    {
        Span<byte> given = stackalloc byte[HMACSHA256.HashSizeInBytes];
        if (string.IsNullOrWhiteSpace(signature) || !Convert.TryFromBase64String(signature.Trim(), given, out var length)
            || length != HMACSHA256.HashSizeInBytes)
        {
            return false;
        }
        Span<byte> expected = stackalloc byte[HMACSHA256.HashSizeInBytes];
        var match = false;
        foreach (var secret in secrets)
        {
            HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body, expected);
            // Every secret is tried, with no early exit, so the time taken says nothing about which matched.
            match |= CryptographicOperations.FixedTimeEquals(expected, given);
        }
        return match;
    }

    /// <summary>The raw body, or null when it is over <see cref="BodyBytesMax"/>.</summary>
    private static async Task<byte[]?> ReadBody(HttpRequest request)
    {
        if (request.ContentLength > BodyBytesMax)
        {
            return null;
        }
        using var buffer = new MemoryStream(request.ContentLength is { } n ? (int)n : 16 * 1024);
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            if (buffer.Length + read > BodyBytesMax)
            {
                return null;
            }
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    private static JsonDocument? Parse(byte[] body, out string? problem)
    {
        problem = null;
        if (body.Length == 0)
        {
            problem = "The body is empty; Shopify sends a JSON object.";
            return null;
        }
        if (!System.Text.Unicode.Utf8.IsValid(body))
        {
            problem = "The body is not valid UTF-8.";
            return null;
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            problem = $"The body is not valid JSON: {ex.Message}";
            return null;
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            problem = "The body must be a JSON object (the REST resource of the topic).";
            return null;
        }
        return document;
    }

    /// <summary>A header as sent, or null when absent, blank or unusable (over 128 characters, control characters).</summary>
    private static string? Header(HttpContext http, string name)
    {
        var value = http.Request.Headers[name].ToString().Trim();
        return value.Length is > 0 and <= HeaderLengthMax && !value.Any(char.IsControl) ? value : null;
    }

    /// <summary>Text from the request made safe for a problem detail: short, with no control characters.</summary>
    private static string Printable(string s) =>
        new(s.Take(HeaderLengthMax).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    /// <summary>
    /// 401 with a challenge naming the signature header: RFC 9110 requires a WWW-Authenticate on
    /// every 401, and the Bearer scheme of the rest of the API does not apply here.
    /// </summary>
    private sealed class SignatureProblem(string detail) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.WWWAuthenticate = $"HMAC-SHA256 header=\"{ShopifyWebhookReceiver.HmacHeader}\"";
            return Problems.Create(StatusCodes.Status401Unauthorized, "invalid-signature", "Unauthorized.", detail).ExecuteAsync(httpContext);
        }
    }
}
