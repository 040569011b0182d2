using System.Globalization;
using System.Text;

namespace Truestock.Connectors.Erp;

/// <summary>An ERP's answer to one request, after the client's own retries.</summary>
/// <param name="Status">The HTTP status, or 0 when no answer came (timeout, refused connection, broken answer).</param>
/// <param name="Reason">The HTTP reason phrase.</param>
/// <param name="Body">The body (bounded); on failures a prefix of it.</param>
/// <param name="Failure">What went wrong when no answer came.</param>
internal sealed record ErpAnswer(int Status, string? Reason, string Body, string? Failure)
{
    /// <summary>True for a 2xx answer.</summary>
    public bool Succeeded => Status is >= 200 and < 300;

    /// <summary>True when the request may succeed later unchanged: no answer, 408, 429 or 5xx.</summary>
    public bool IsTransient => Status is 0 or 408 or 429 or >= 500;

    /// <summary>The failure as an error text: the transport failure, or the status and a bounded prefix of the body.</summary>
    public string Describe(string service) => Status == 0
        ? Failure ?? $"No answer from {service}."
        : ErpHttp.Bound(string.Create(CultureInfo.InvariantCulture, $"HTTP {Status}{(Reason is { Length: > 0 } r ? " " + r : "")} from {service}")
            + (Body.Length > 0 ? ": " + Body : ""));
}

/// <summary>
/// The HTTP side of an ERP connector: a token bucket for the request rate, a limit on requests in flight, a time limit
/// per request, and bounded retries. Throttles (429) are always retried after the ERP's Retry-After (every request
/// waits, not only the throttled one); transient failures (no answer, 408, 5xx) are retried only for requests the
/// caller marks safe to repeat, because a write whose answer was lost may have been applied.
/// </summary>
internal sealed class ErpHttp : IDisposable
{
    /// <summary>Retries after a 429 before the request comes back as throttled.</summary>
    internal const int ThrottleRetriesMax = 3;

    /// <summary>Retries of a repeatable request after a transient failure.</summary>
    internal const int TransientRetriesMax = 2;

    /// <summary>The longest Retry-After waited inside one request; a longer one comes back at once as transient.</summary>
    internal static readonly TimeSpan RetryAfterMax = TimeSpan.FromSeconds(30);

    /// <summary>Longest error text an outcome carries.</summary>
    internal const int ErrorTextLengthMax = 1000;

    /// <summary>Bytes of a failed answer quoted in errors.</summary>
    private const int ErrorBodyBytesMax = 512;

    /// <summary>Largest successful answer read.</summary>
    private const int BodyBytesMax = 4 * 1024 * 1024;

    private static readonly TimeSpan RetryDelayBase = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan RetryDelayCap = TimeSpan.FromSeconds(5);

    private readonly ErpContext _context;
    private readonly TimeProvider _time;
    private readonly RateGate _gate;
    private readonly SemaphoreSlim _inFlight;
    private readonly TimeSpan _timeout;
    private readonly ConnectorCounters _counters;

    public ErpHttp(ErpSettings settings, ErpContext context, ConnectorCounters counters)
    {
        _context = context;
        _time = context.Time;
        _counters = counters;
        // A burst of one second's worth keeps a cold start within the ERP's quota.
        _gate = new RateGate(new TokenBucket(Math.Max(1, settings.RequestsPerSecondMax), settings.RequestsPerSecondMax, _time), _time);
        _inFlight = new SemaphoreSlim(settings.ConcurrencyMax, settings.ConcurrencyMax);
        _timeout = TimeSpan.FromSeconds(settings.TimeoutSeconds);
    }

    /// <summary>
    /// Sends a request built by <paramref name="build"/> (called again for each retry) and returns the answer. Never
    /// throws for ERP failures; throws <see cref="OperationCanceledException"/> when <paramref name="ct"/> is cancelled.
    /// </summary>
    public async Task<ErpAnswer> SendAsync(Func<HttpRequestMessage> build, bool repeatable, string service, CancellationToken ct)
    {
        var throttles = 0;
        var transients = 0;
        while (true)
        {
            var answer = await ExchangeAsync(build, service, ct).ConfigureAwait(false);
            if (answer.Status == 429)
            {
                Interlocked.Increment(ref _counters.Throttles);
                _gate.Drain();
                var wait = answer.RetryAfter ?? Backoff.Delay(throttles + 1, TimeSpan.FromSeconds(1), RetryDelayCap, Random.Shared);
                if (++throttles > ThrottleRetriesMax || wait > RetryAfterMax)
                {
                    return answer.Answer;
                }
                // Every request waits, not only this one: the ERP asked the hub to slow down.
                _gate.Defer(wait);
                continue;
            }
            if (!answer.Answer.IsTransient || answer.Answer.Succeeded)
            {
                if (!answer.Answer.Succeeded)
                {
                    Interlocked.Increment(ref _counters.Failures);
                }
                return answer.Answer;
            }
            Interlocked.Increment(ref _counters.Failures);
            if (!repeatable || ++transients > TransientRetriesMax)
            {
                return answer.Answer;
            }
            var delay = answer.RetryAfter is { } hinted && hinted <= RetryAfterMax
                ? hinted
                : Backoff.Delay(transients, RetryDelayBase, RetryDelayCap, Random.Shared);
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
        }
    }

    public void Dispose() => _inFlight.Dispose();

    internal static string Bound(string text) =>
        text.Length <= ErrorTextLengthMax ? text : string.Concat(text.AsSpan(0, ErrorTextLengthMax - 1), "…");

    private async Task<(ErpAnswer Answer, TimeSpan? RetryAfter, int Status)> ExchangeAsync(Func<HttpRequestMessage> build, string service, CancellationToken ct)
    {
        // The slot first, then the token: a token taken while waiting for a slot would let requests bunch up
        // beyond the rate once slots free.
        await _inFlight.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await _gate.WaitTurnAsync(ct).ConfigureAwait(false);
            Interlocked.Increment(ref _counters.Calls);
            using var request = build();
            using var timeout = new CancellationTokenSource(_timeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
            try
            {
                using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                var succeeded = status is >= 200 and < 300;
                var body = await ReadAsync(response.Content, succeeded ? BodyBytesMax : ErrorBodyBytesMax, linked.Token).ConfigureAwait(false);
                if (body is null)
                {
                    return (new ErpAnswer(0, null, "", $"The answer from {service} is larger than {BodyBytesMax} bytes."), null, 0);
                }
                return (new ErpAnswer(status, response.ReasonPhrase, body, null), Backoff.RetryAfter(response, _time), status);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return (new ErpAnswer(0, null, "", string.Create(CultureInfo.InvariantCulture,
                    $"No answer from {service} within {_timeout.TotalSeconds:0.#} s.")), null, 0);
            }
            catch (HttpRequestException ex)
            {
                return (new ErpAnswer(0, null, "", Bound($"The request to {service} failed: {ex.Message}")), null, 0);
            }
            catch (IOException ex)
            {
                return (new ErpAnswer(0, null, "", Bound($"The answer from {service} broke off: {ex.Message}")), null, 0);
            }
        }
        finally
        {
            _inFlight.Release();
        }
    }

    /// <summary>Reads at most <paramref name="bytesMax"/> bytes; null when a successful answer is larger (error bodies are cut).</summary>
    private static async Task<string?> ReadAsync(HttpContent content, int bytesMax, CancellationToken ct)
    {
        var stream = await content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            while (true)
            {
                var read = await stream.ReadAsync(chunk, ct).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                var take = (int)Math.Min(read, bytesMax - buffer.Length);
                buffer.Write(chunk, 0, take);
                if (take < read)
                {
                    if (bytesMax == ErrorBodyBytesMax)
                    {
                        break;
                    }
                    return null;
                }
            }
            // A multi-byte character cut at the end of an error prefix decodes as a replacement character, which is fine.
            return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length).Trim();
        }
    }
}
