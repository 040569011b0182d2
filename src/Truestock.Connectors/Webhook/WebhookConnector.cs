using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Truestock.Connectors.Webhook;

/// <summary>
/// Publishes available-to-sell quantities to any system as signed webhooks: one JSON document per change,
/// <c>POST</c>ed to the configured URL and signed with HMAC-SHA256 (see <see cref="WebhookSignature"/>).
/// </summary>
/// <remarks>
/// <para>
/// Body: <c>{"channelId","sku","available","version","urgent","sentAt"}</c>. Headers: the signature
/// (default <c>X-Truestock-Signature: sha256=&lt;hex&gt;</c>), <c>X-Truestock-Channel</c>,
/// <c>X-Truestock-Version</c> and <c>Idempotency-Key: channel:sku:version</c>, so a receiver can drop
/// repeats and keep only a higher version per SKU (a webhook has no compare-and-set on our side, so
/// ordering is the publisher's job plus the receiver's version check).
/// </para>
/// <para>
/// 2xx is Accepted; 408, 429, 5xx, timeouts and transport errors are retried (bounded, honouring
/// Retry-After) and then Transient; any other status is Permanent with the status and a bounded prefix
/// of the receiver's body.
/// </para>
/// </remarks>
public sealed class WebhookConnector : IChannelConnector
{
    /// <summary>Retries after a 429 before the update comes back Transient.</summary>
    internal const int ThrottleRetriesMax = 3;

    /// <summary>Retries after timeouts, transport errors, 408 and 5xx before the update comes back Transient.</summary>
    internal const int TransientRetriesMax = 2;

    /// <summary>Bytes of a failed answer quoted in the outcome's error.</summary>
    internal const int ErrorBodyBytesMax = 512;

    /// <summary>Longest error text an outcome carries.</summary>
    internal const int ErrorTextLengthMax = 400;

    /// <summary>The longest Retry-After the connector waits inside one publish call; longer means Transient now.</summary>
    internal static readonly TimeSpan RetryAfterMax = TimeSpan.FromSeconds(30);

    /// <summary>Backoff base and cap when the receiver gives no Retry-After.</summary>
    internal static readonly TimeSpan RetryDelayBase = TimeSpan.FromMilliseconds(200);

    /// <inheritdoc cref="RetryDelayBase"/>
    internal static readonly TimeSpan RetryDelayCap = TimeSpan.FromSeconds(5);

    /// <summary>The header carrying the hub's channel id.</summary>
    public const string ChannelHeader = "X-Truestock-Channel";

    /// <summary>The header carrying the update's version.</summary>
    public const string VersionHeader = "X-Truestock-Version";

    /// <summary>The header carrying <c>channel:sku:version</c>, the same on every retry of an update.</summary>
    public const string IdempotencyHeader = "Idempotency-Key";

    private readonly WebhookSettings _settings;
    private readonly ConnectorContext _context;
    private readonly TimeProvider _time;
    private readonly RateGate _gate;

    private WebhookConnector(WebhookSettings settings, ConnectorContext context)
    {
        _settings = settings;
        _context = context;
        _time = context.Time;
        // A burst of one second's worth keeps a cold start from flooding the receiver.
        _gate = new RateGate(new TokenBucket(Math.Max(1, settings.RequestsPerSecondMax), settings.RequestsPerSecondMax, _time), _time);
    }

    /// <inheritdoc />
    public int BatchSizeMax => _settings.BatchSizeMax;

    /// <inheritdoc />
    public ConnectorCounters Counters { get; } = new();

    /// <summary>Returns an error message naming the invalid field, or null when the settings are valid.</summary>
    public static string? Validate(JsonElement settings) => WebhookSettings.TryParse(settings, out _);

    /// <summary>Creates the connector for valid settings (see <see cref="Validate"/>).</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var error = WebhookSettings.TryParse(settings, out var parsed);
        if (error is not null)
        {
            throw new ArgumentException($"Invalid webhook connector settings for channel '{context.ChannelId}': {error}", nameof(settings));
        }
        return new WebhookConnector(parsed!, context);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<PublishOutcome>> PublishAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count > BatchSizeMax)
        {
            throw new ArgumentException($"A batch holds at most {BatchSizeMax} updates; got {updates.Count}.", nameof(updates));
        }
        var outcomes = new PublishOutcome[updates.Count];
        var secret = _context.Credential(_settings.SecretName);
        if (string.IsNullOrEmpty(secret))
        {
            // Never send unsigned: the receiver could not tell us from anyone else. The message names the secret, never its value.
            var error = $"The credential set '{_settings.CredentialSet ?? _context.ChannelId}' of channel '{_context.ChannelId}' has no '{_settings.SecretName}' to sign webhooks with.";
            for (var i = 0; i < updates.Count; i++)
            {
                outcomes[i] = new PublishOutcome(updates[i].Sku, updates[i].Version, PublishStatus.Permanent, error);
            }
            return outcomes;
        }

        // Urgent updates come first in the batch, and workers take them in order, so they start first.
        var options = new ParallelOptions { MaxDegreeOfParallelism = _settings.ConcurrencyMax, CancellationToken = cancellationToken };
        await Parallel.ForEachAsync(Enumerable.Range(0, updates.Count), options, async (i, ct) =>
        {
            outcomes[i] = await DeliverAsync(updates[i], secret, ct).ConfigureAwait(false);
        }).ConfigureAwait(false);
        return outcomes;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>The exact bytes sent (and signed) for an update.</summary>
    internal static byte[] Body(string channelId, AtsUpdate update, DateTimeOffset sentAt)
    {
        var buffer = new ArrayBufferWriter<byte>(192);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("channelId", channelId);
            writer.WriteString("sku", update.Sku);
            writer.WriteNumber("available", update.Quantity);
            writer.WriteNumber("version", update.Version);
            writer.WriteBoolean("urgent", update.Urgent);
            writer.WriteString("sentAt", sentAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffK", CultureInfo.InvariantCulture));
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private async Task<PublishOutcome> DeliverAsync(AtsUpdate update, string secret, CancellationToken ct)
    {
        // The body (and so the signature and idempotency key) stays the same on every retry of this update.
        var body = Body(_context.ChannelId, update, _time.GetUtcNow());
        var signature = WebhookSignature.Compute(secret, body);
        var key = $"{_context.ChannelId}:{update.Sku}:{update.Version.ToString(CultureInfo.InvariantCulture)}";
        var throttles = 0;
        var transients = 0;
        while (true)
        {
            await _gate.WaitTurnAsync(ct).ConfigureAwait(false);
            using var request = new HttpRequestMessage(HttpMethod.Post, _settings.Url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
            request.Headers.TryAddWithoutValidation(_settings.Header, signature);
            request.Headers.TryAddWithoutValidation(ChannelHeader, _context.ChannelId);
            request.Headers.TryAddWithoutValidation(VersionHeader, update.Version.ToString(CultureInfo.InvariantCulture));
            request.Headers.TryAddWithoutValidation(IdempotencyHeader, key);

            var answer = await ExchangeAsync(request, ct).ConfigureAwait(false);
            if (answer.Status is >= 200 and < 300)
            {
                return new PublishOutcome(update.Sku, update.Version, PublishStatus.Accepted);
            }
            if (answer.Status == 429)
            {
                Interlocked.Increment(ref Counters.Throttles);
                _gate.Drain();
                var wait = answer.RetryAfter ?? Backoff.Delay(throttles + 1, TimeSpan.FromSeconds(1), RetryDelayCap, Random.Shared);
                if (++throttles > ThrottleRetriesMax || wait > RetryAfterMax)
                {
                    return Failed(update, PublishStatus.Transient, answer);
                }
                // Every worker holds back, not just this one: the receiver asked the sender to slow down.
                _gate.Defer(wait);
                continue;
            }
            Interlocked.Increment(ref Counters.Failures);
            if (answer.Status is not (0 or 408) && answer.Status < 500)
            {
                return Failed(update, PublishStatus.Permanent, answer);
            }
            if (++transients > TransientRetriesMax)
            {
                return Failed(update, PublishStatus.Transient, answer);
            }
            var delay = answer.RetryAfter is { } hinted && hinted <= RetryAfterMax
                ? hinted
                : Backoff.Delay(transients, RetryDelayBase, RetryDelayCap, Random.Shared);
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Makes one exchange with the per-request timeout; never throws for receiver failures.</summary>
    private async Task<Answer> ExchangeAsync(HttpRequestMessage request, CancellationToken ct)
    {
        Interlocked.Increment(ref Counters.Calls);
        using var timeout = new CancellationTokenSource(_settings.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            var prefix = status is >= 200 and < 300 ? "" : await PrefixAsync(response.Content, linked.Token).ConfigureAwait(false);
            return new Answer(status, response.ReasonPhrase, prefix, Backoff.RetryAfter(response, _time), null);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new Answer(0, null, "", null, string.Create(CultureInfo.InvariantCulture,
                $"The webhook receiver did not answer within {_settings.Timeout.TotalSeconds:0.#} s."));
        }
        catch (HttpRequestException ex)
        {
            return new Answer(0, null, "", null, Bound($"The webhook request failed: {ex.Message}"));
        }
        catch (IOException ex)
        {
            return new Answer(0, null, "", null, Bound($"The webhook answer broke off: {ex.Message}"));
        }
    }

    private static async Task<string> PrefixAsync(HttpContent content, CancellationToken ct)
    {
        var stream = await content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = new byte[ErrorBodyBytesMax];
            var total = 0;
            while (total < buffer.Length)
            {
                var read = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                total += read;
            }
            // A multi-byte character cut at the end decodes as a replacement character, which is fine for an error text.
            return Encoding.UTF8.GetString(buffer, 0, total).Trim();
        }
    }

    private static PublishOutcome Failed(AtsUpdate update, PublishStatus status, Answer answer)
    {
        var text = answer.Status == 0
            ? answer.Failure!
            : string.Create(CultureInfo.InvariantCulture, $"HTTP {answer.Status}{(answer.Reason is { Length: > 0 } r ? " " + r : "")}")
              + (answer.BodyPrefix.Length > 0 ? ": " + answer.BodyPrefix : "");
        return new PublishOutcome(update.Sku, update.Version, status, Bound(text));
    }

    private static string Bound(string text) =>
        text.Length <= ErrorTextLengthMax ? text : string.Concat(text.AsSpan(0, ErrorTextLengthMax - 1), "…");

    private sealed record Answer(int Status, string? Reason, string BodyPrefix, TimeSpan? RetryAfter, string? Failure);
}
