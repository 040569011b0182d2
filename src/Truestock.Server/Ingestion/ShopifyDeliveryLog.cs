using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Truestock.Server.Ingestion;

/// <summary>
/// The Shopify deliveries answered 2xx lately, so that a redelivery is answered at once without
/// touching the engine. This is a fast path only: it is bounded and lives in memory, so after a
/// restart or past its bounds a redelivery is decided again, and the ids derived from Shopify's
/// order, fulfillment and refund ids (durable in the journal for ever) make that a duplicate.
/// </summary>
internal sealed class ShopifyDeliveryLog(TimeProvider time)
{
    /// <summary>Most delivery ids remembered; the oldest are forgotten first.</summary>
    public const int DeliveryIdsMax = 100_000;

    /// <summary>How long a delivery id is remembered: longer than Shopify's 4-hour retry window.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromHours(24);

    private readonly Dictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, DateTimeOffset At)> _order = new();
    private readonly Lock _lock = new();

    /// <summary>True when any of the delivery's ids was answered 2xx before, for this source and topic.</summary>
    public bool Seen(string sourceId, string topic, IEnumerable<string> ids)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            foreach (var id in ids)
            {
                if (_seen.TryGetValue(Key(sourceId, topic, id), out var at) && now - at < Retention)
                {
                    return true;
                }
            }
            return false;
        }
    }

    /// <summary>Remembers a delivery that was answered 2xx.</summary>
    public void Remember(string sourceId, string topic, IEnumerable<string> ids)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            foreach (var id in ids)
            {
                var key = Key(sourceId, topic, id);
                _seen[key] = now;
                _order.Enqueue((key, now));
            }
            while (_order.Count > 0 && (_order.Count > DeliveryIdsMax || now - _order.Peek().At >= Retention))
            {
                var (key, at) = _order.Dequeue();
                // A key remembered again later has a newer time; only its own last entry removes it.
                if (_seen.TryGetValue(key, out var last) && last == at)
                {
                    _seen.Remove(key);
                }
            }
        }
    }

    // The topic is part of the key because one merchant action (a cancellation with a refund)
    // raises deliveries of several topics, and each must be handled.
    private static string Key(string sourceId, string topic, string id) => string.Concat(sourceId, "\n", topic, "\n", id);
}

/// <summary>What came of a Shopify delivery, for the counter.</summary>
internal enum ShopifyDeliveryOutcome
{
    /// <summary>Decided and durable.</summary>
    Applied,
    /// <summary>A redelivery: nothing applied again.</summary>
    Duplicate,
    /// <summary>A topic or payload with nothing for the hub to do.</summary>
    Ignored,
    /// <summary>Answered 200, but a business rule refused part or all of it (recorded and logged).</summary>
    Rejected,
    /// <summary>Answered 409 so that Shopify delivers it again later (a fulfillment before its order).</summary>
    Deferred,
    /// <summary>Missing or wrong HMAC signature (401).</summary>
    Unauthorized,
    /// <summary>Malformed or invalid payload (400/422).</summary>
    Malformed,
    /// <summary>Body over the limit (413).</summary>
    TooLarge,
    /// <summary>The source's configuration cannot take the delivery (503).</summary>
    Misconfigured,
}

/// <summary>
/// Counts Shopify deliveries by outcome. The counts are offered two ways: as the
/// <c>truestock.shopify.webhooks</c> instrument of the <c>Truestock.Shopify</c> meter (tags
/// <c>source</c>, <c>outcome</c>), which dotnet-counters and OpenTelemetry read, and as Prometheus
/// text from <see cref="Render"/>, ready for the hub's /metrics page to append.
/// </summary>
internal sealed class ShopifyWebhookMetrics
{
    public const string MeterName = "Truestock.Shopify";
    public const string InstrumentName = "truestock.shopify.webhooks";

    private static readonly string[] OutcomeNames = Enum.GetValues<ShopifyDeliveryOutcome>()
        .Select(o => System.Text.RegularExpressions.Regex.Replace(o.ToString(), "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant()).ToArray();

    private readonly long[] _counts = new long[OutcomeNames.Length];
    private readonly Counter<long> _counter;

    public ShopifyWebhookMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _counter = meters.Create(MeterName).CreateCounter<long>(InstrumentName, unit: "{delivery}",
            description: "Shopify webhook deliveries by outcome.");
    }

    public static string Name(ShopifyDeliveryOutcome outcome) => OutcomeNames[(int)outcome];

    public void Delivery(string sourceId, ShopifyDeliveryOutcome outcome)
    {
        Interlocked.Increment(ref _counts[(int)outcome]);
        _counter.Add(1, new KeyValuePair<string, object?>("source", sourceId), new KeyValuePair<string, object?>("outcome", Name(outcome)));
    }

    public long Count(ShopifyDeliveryOutcome outcome) => Interlocked.Read(ref _counts[(int)outcome]);

    /// <summary>Appends <c>truestock_shopify_webhooks_total{outcome}</c> in the Prometheus text format.</summary>
    public void Render(StringBuilder sb)
    {
        ArgumentNullException.ThrowIfNull(sb);
        sb.Append("# HELP truestock_shopify_webhooks_total Shopify webhook deliveries by outcome.\n")
          .Append("# TYPE truestock_shopify_webhooks_total counter\n");
        for (var i = 0; i < OutcomeNames.Length; i++)
        {
            sb.Append("truestock_shopify_webhooks_total{outcome=\"").Append(OutcomeNames[i]).Append("\"} ")
              .Append(Interlocked.Read(ref _counts[i]).ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }
}
