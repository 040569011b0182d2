namespace Truestock.Connectors;

/// <summary>
/// A token bucket (leaky-bucket rate limit as channels document it): holds at most
/// <c>capacity</c> tokens and refills <c>refillPerSecond</c> tokens a second. Callers await
/// their tokens before a call, so a connector never sends faster than the channel allows.
/// Thread-safe.
/// </summary>
public sealed class TokenBucket
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private double _tokens;
    private long _lastTicks;

    /// <summary>Creates a full bucket.</summary>
    public TokenBucket(double capacity, double refillPerSecond, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(refillPerSecond);
        ArgumentNullException.ThrowIfNull(time);
        Capacity = capacity;
        RefillPerSecond = refillPerSecond;
        _time = time;
        _tokens = capacity;
        _lastTicks = time.GetTimestamp();
    }

    /// <summary>The most tokens the bucket holds.</summary>
    public double Capacity { get; }

    /// <summary>Tokens added per second.</summary>
    public double RefillPerSecond { get; private set; }

    /// <summary>Tokens available now.</summary>
    public double Available
    {
        get
        {
            lock (_gate)
            {
                Refill();
                return _tokens;
            }
        }
    }

    /// <summary>Waits until <paramref name="tokens"/> are available and takes them.</summary>
    public async Task TakeAsync(double tokens, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tokens, Capacity);
        while (true)
        {
            TimeSpan wait;
            lock (_gate)
            {
                Refill();
                if (_tokens >= tokens)
                {
                    _tokens -= tokens;
                    return;
                }
                wait = TimeSpan.FromSeconds((tokens - _tokens) / RefillPerSecond);
            }
            await Task.Delay(wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Aligns the bucket with what the channel reports (a throttle status or rate-limit header),
    /// because the channel's own count wins over ours.
    /// </summary>
    public void Observe(double currentlyAvailable, double? refillPerSecond = null)
    {
        lock (_gate)
        {
            Refill();
            _tokens = Math.Clamp(currentlyAvailable, 0, Capacity);
            if (refillPerSecond is > 0)
            {
                RefillPerSecond = refillPerSecond.Value;
            }
        }
    }

    /// <summary>Empties the bucket, after the channel said we were throttled.</summary>
    public void Drain()
    {
        lock (_gate)
        {
            Refill();
            _tokens = 0;
        }
    }

    private void Refill()
    {
        var now = _time.GetTimestamp();
        var elapsed = _time.GetElapsedTime(_lastTicks, now).TotalSeconds;
        _lastTicks = now;
        _tokens = Math.Min(Capacity, _tokens + (elapsed * RefillPerSecond));
    }
}

/// <summary>Capped exponential backoff with full jitter, for retries after throttles and transient errors.</summary>
public static class Backoff
{
    /// <summary>The delay before retry number <paramref name="attempt"/> (1-based): random in [0, min(cap, base · 2^(attempt−1))].</summary>
    public static TimeSpan Delay(int attempt, TimeSpan baseDelay, TimeSpan cap, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        ArgumentNullException.ThrowIfNull(random);
        var ceiling = Math.Min(cap.TotalMilliseconds, baseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)));
        return TimeSpan.FromMilliseconds(random.NextDouble() * ceiling);
    }

    /// <summary>Parses a Retry-After header value (seconds or HTTP date) into a delay; null when absent or unreadable.</summary>
    public static TimeSpan? RetryAfter(HttpResponseMessage response, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(time);
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta;
        }
        if (header?.Date is { } date)
        {
            var wait = date - time.GetUtcNow();
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }
        return null;
    }
}
