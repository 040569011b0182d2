using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Truestock.Connectors.Amazon;

/// <summary>One SP-API operation with its own usage plan (token bucket).</summary>
/// <param name="Name">The operation's name in Amazon's reference (for error messages).</param>
/// <param name="Bucket">The bucket every call of the operation waits for; null for presigned document URLs, which SP-API does not rate-limit.</param>
/// <param name="RateCeiling">The highest rate x-amzn-RateLimit-Limit may align the bucket to (for limits the header does not report).</param>
internal sealed record SpOperation(string Name, TokenBucket? Bucket, double? RateCeiling = null);

/// <summary>An HTTP answer the caller interprets (2xx, or a 4xx other than auth and throttle).</summary>
internal sealed record SpResponse(HttpStatusCode Status, string Body, byte[]? Bytes);

/// <summary>The result of one SP-API call after throttle handling, token refresh and retries.</summary>
/// <param name="Response">The answer to interpret; null when the call failed.</param>
/// <param name="FailureStatus">How the failure maps (when Response is null).</param>
/// <param name="Error">The failure's text (when Response is null).</param>
/// <param name="MayHaveReachedServer">True when the request may have been processed although no usable answer came (timeout, transport error, 5xx).</param>
/// <param name="Throttled">True when the call failed because Amazon kept answering 429.</param>
internal readonly record struct SpResult(SpResponse? Response, PublishStatus FailureStatus, string? Error, bool MayHaveReachedServer = false, bool Throttled = false)
{
    public static SpResult Failed(PublishStatus status, string error, bool mayHaveReachedServer = false) => new(null, status, error, mayHaveReachedServer);
}

/// <summary>Thrown when a response body is larger than the caller allows.</summary>
internal sealed class ResponseTooLargeException : Exception
{
    public ResponseTooLargeException()
    {
    }

    public ResponseTooLargeException(string message) : base(message)
    {
    }

    public ResponseTooLargeException(string message, Exception inner) : base(message, inner)
    {
    }
}

/// <summary>
/// Sends SP-API requests: waits for the operation's token bucket, adds the LWA access token,
/// enforces a per-request timeout, honours throttles (429: drain the bucket, wait Retry-After
/// or a jittered backoff, retry a bounded number of times), aligns the bucket's rate with the
/// <c>x-amzn-RateLimit-Limit</c> header, refreshes the token once on 401/403, and retries
/// 5xx/timeouts of idempotent requests a bounded number of times. It never throws for channel
/// failures; it returns them classified as transient or permanent.
/// </summary>
internal sealed class SpApiClient
{
    /// <summary>The longest wait between throttle retries when Amazon gives no Retry-After.</summary>
    private static readonly TimeSpan BackoffCapMax = TimeSpan.FromSeconds(30);

    /// <summary>The most bytes of an API response read (listings and feed answers are a few KiB).</summary>
    public const int ApiResponseBytesMax = 1024 * 1024;

    /// <summary>The most characters of a channel error kept in an outcome.</summary>
    public const int ErrorCharsMax = 600;

    private readonly AmazonSettings _settings;
    private readonly ConnectorContext _context;
    private readonly ConnectorCounters _counters;
    private readonly LwaTokenProvider _tokens;

    public SpApiClient(AmazonSettings settings, ConnectorContext context, ConnectorCounters counters, LwaTokenProvider tokens)
    {
        _settings = settings;
        _context = context;
        _counters = counters;
        _tokens = tokens;
    }

    /// <summary>Sends one request built by <paramref name="build"/> (called once per attempt).</summary>
    /// <param name="operation">The operation (its bucket paces the call).</param>
    /// <param name="build">Builds a fresh request for each attempt.</param>
    /// <param name="authenticated">Adds the LWA access token (false for presigned document URLs).</param>
    /// <param name="idempotent">Whether 5xx answers and timeouts may be retried (false for createFeed, whose retry could create a second feed).</param>
    /// <param name="bytesMax">The largest response body read.</param>
    /// <param name="keepBytes">Keep the raw body bytes (for documents that may be compressed).</param>
    /// <param name="prepaid">The caller already took the first attempt's token from the bucket.</param>
    /// <param name="throttleRetriesMax">Overrides the settings' throttle retries (0 for createFeed, whose budget refills in minutes).</param>
    /// <param name="cancellationToken">Cancels the call (throws).</param>
    public async Task<SpResult> SendAsync(
        SpOperation operation,
        Func<HttpRequestMessage> build,
        bool authenticated,
        bool idempotent,
        CancellationToken cancellationToken,
        int bytesMax = ApiResponseBytesMax,
        bool keepBytes = false,
        bool prepaid = false,
        int? throttleRetriesMax = null)
    {
        var throttles = 0;
        var retriesMax = throttleRetriesMax ?? _settings.ThrottleRetriesMax;
        var transientRetries = 0;
        var refreshed = false;
        while (true)
        {
            if (operation.Bucket is { } bucket && !prepaid)
            {
                await bucket.TakeAsync(1, cancellationToken).ConfigureAwait(false);
            }
            prepaid = false;
            string? token = null;
            if (authenticated)
            {
                var tokenResult = await _tokens.GetAsync(cancellationToken).ConfigureAwait(false);
                if (tokenResult.Token is null)
                {
                    return SpResult.Failed(tokenResult.FailureStatus, tokenResult.Error!);
                }
                token = tokenResult.Token;
            }

            using var request = build();
            if (token is not null)
            {
                request.Headers.TryAddWithoutValidation("x-amz-access-token", token);
            }
            request.Headers.TryAddWithoutValidation("User-Agent", "Truestock/1.0 (Language=CSharp)");
            Interlocked.Increment(ref _counters.Calls);

            HttpStatusCode status;
            byte[] bytes;
            TimeSpan? retryAfter;
            using (var timeout = new CancellationTokenSource(_settings.Timeout, _context.Time))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token))
            {
                string? failure = null;
                status = default;
                bytes = [];
                retryAfter = null;
                try
                {
                    using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
                    status = response.StatusCode;
                    retryAfter = Backoff.RetryAfter(response, _context.Time);
                    AlignRate(operation, response);
                    bytes = await ReadBytesBoundedAsync(response.Content, bytesMax, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    failure = string.Create(CultureInfo.InvariantCulture, $"{operation.Name} timed out after {_settings.Timeout.TotalSeconds:0.##} s.");
                }
                catch (HttpRequestException ex)
                {
                    failure = $"{operation.Name} failed: {Truncate(ex.Message)}";
                }
                catch (ResponseTooLargeException)
                {
                    failure = $"{operation.Name} answered with a body larger than {bytesMax} bytes.";
                }
                if (failure is not null)
                {
                    Interlocked.Increment(ref _counters.Failures);
                    if (idempotent && transientRetries < _settings.TransientRetriesMax)
                    {
                        transientRetries++;
                        await DelayAsync(Backoff.Delay(transientRetries, _settings.RetryBaseDelay, BackoffCapMax, Random.Shared), cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    return SpResult.Failed(PublishStatus.Transient, failure, mayHaveReachedServer: true);
                }
            }

            var body = Encoding.UTF8.GetString(bytes);
            if (status == HttpStatusCode.TooManyRequests)
            {
                // The channel's count wins over ours: empty the bucket so no other call goes out
                // before the wait, then wait what Amazon asks (or a jittered backoff).
                Interlocked.Increment(ref _counters.Throttles);
                operation.Bucket?.Drain();
                if (throttles >= retriesMax)
                {
                    return new SpResult(null, PublishStatus.Transient, $"{operation.Name} throttled (429) {throttles + 1} times: {ErrorText(body)}", Throttled: true);
                }
                throttles++;
                var wait = retryAfter ?? Backoff.Delay(throttles, _settings.RetryBaseDelay, BackoffCapMax, Random.Shared);
                await DelayAsync(wait, cancellationToken).ConfigureAwait(false);
                // Our bucket refilled at the full rate during the wait, but Amazon's burst may be
                // smaller than ours (the header reports the rate only): restart with at most one
                // token, so the retries of all waiting callers go out at the rate, not as a burst.
                operation.Bucket?.Observe(Math.Min(operation.Bucket.Available, 1));
                continue;
            }
            if (authenticated && status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                Interlocked.Increment(ref _counters.Failures);
                if (!refreshed)
                {
                    // An access token can expire or be revoked before our cache says so: refresh once.
                    refreshed = true;
                    _tokens.Invalidate(token!);
                    continue;
                }
                return SpResult.Failed(PublishStatus.Permanent, $"{operation.Name} answered {(int)status} after a token refresh: {ErrorText(body)}");
            }
            if ((int)status >= 500)
            {
                Interlocked.Increment(ref _counters.Failures);
                if (idempotent && transientRetries < _settings.TransientRetriesMax)
                {
                    transientRetries++;
                    await DelayAsync(retryAfter ?? Backoff.Delay(transientRetries, _settings.RetryBaseDelay, BackoffCapMax, Random.Shared), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                return SpResult.Failed(PublishStatus.Transient, $"{operation.Name} answered {(int)status}: {ErrorText(body)}", mayHaveReachedServer: true);
            }
            if ((int)status >= 400)
            {
                Interlocked.Increment(ref _counters.Failures);
            }
            return new SpResult(new SpResponse(status, body, keepBytes ? bytes : null), PublishStatus.Accepted, null);
        }
    }

    /// <summary>
    /// Sets the bucket's refill rate to the rate Amazon reports in <c>x-amzn-RateLimit-Limit</c>
    /// (requests per second for this account-application pair), because the seller's usage plan
    /// may differ from the documented default.
    /// </summary>
    private static void AlignRate(SpOperation operation, HttpResponseMessage response)
    {
        if (operation.Bucket is not { } bucket
            || !response.Headers.TryGetValues("x-amzn-RateLimit-Limit", out var values))
        {
            return;
        }
        var text = values.FirstOrDefault();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var rate) && rate > 0 && rate < 10_000
            && Math.Abs(Math.Min(rate, operation.RateCeiling ?? double.MaxValue) - bucket.RefillPerSecond) > 1e-9)
        {
            rate = Math.Min(rate, operation.RateCeiling ?? double.MaxValue);
            bucket.Observe(bucket.Available, rate);
        }
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        delay <= TimeSpan.Zero ? Task.CompletedTask : Task.Delay(delay, _context.Time, cancellationToken);

    /// <summary>Reads a body as UTF-8, failing when it exceeds <paramref name="bytesMax"/>.</summary>
    public static async Task<string> ReadBoundedAsync(HttpContent content, int bytesMax, CancellationToken cancellationToken) =>
        Encoding.UTF8.GetString(await ReadBytesBoundedAsync(content, bytesMax, cancellationToken).ConfigureAwait(false));

    /// <summary>Reads a body, failing when it exceeds <paramref name="bytesMax"/>.</summary>
    public static async Task<byte[]> ReadBytesBoundedAsync(HttpContent content, int bytesMax, CancellationToken cancellationToken)
    {
        // A declared length over the limit fails before anything is read.
        if (content.Headers.ContentLength is { } length && length > bytesMax)
        {
            throw new ResponseTooLargeException();
        }
        return await BoundedBody.ReadAsync(content, bytesMax, cancellationToken).ConfigureAwait(false)
            ?? throw new ResponseTooLargeException();
    }

    /// <summary>
    /// Formats an SP-API <c>ErrorList</c> (<c>{"errors":[{"code","message","details"}]}</c>) as
    /// "code: message (details)"; falls back to the raw body, truncated.
    /// </summary>
    public static string ErrorText(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("errors", out var errors)
                && errors.ValueKind == JsonValueKind.Array)
            {
                var parts = new List<string>();
                foreach (var error in errors.EnumerateArray().Take(5))
                {
                    var code = StringOf(error, "code");
                    var message = StringOf(error, "message");
                    var details = StringOf(error, "details");
                    parts.Add($"{code ?? "error"}: {message}{(string.IsNullOrEmpty(details) ? "" : $" ({details})")}");
                }
                if (parts.Count > 0)
                {
                    return Truncate(string.Join("; ", parts))!;
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's HTML page, an empty body): the raw text says more than nothing.
        }
        return string.IsNullOrWhiteSpace(body) ? "(empty body)" : Truncate(body.Trim())!;
    }

    public static string? StringOf(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    public static string? Truncate(string? text) =>
        text is null || text.Length <= ErrorCharsMax ? text : string.Concat(text.AsSpan(0, ErrorCharsMax), "…");
}
