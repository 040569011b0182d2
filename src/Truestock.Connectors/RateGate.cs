namespace Truestock.Connectors;

/// <summary>
/// The turn a connector waits for before each request: first a shared not-before time, which a throttle answer
/// (429 with Retry-After) pushes out for every worker, then one token of the connector's <see cref="TokenBucket"/>.
/// Thread-safe.
/// </summary>
internal sealed class RateGate(TokenBucket bucket, TimeProvider time)
{
    private long _notBeforeTicks;

    /// <summary>Waits until the not-before time has passed, then takes one token of the bucket.</summary>
    public async Task WaitTurnAsync(CancellationToken ct)
    {
        var notBefore = new DateTimeOffset(Interlocked.Read(ref _notBeforeTicks), TimeSpan.Zero);
        var wait = notBefore - time.GetUtcNow();
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, time, ct).ConfigureAwait(false);
        }
        await bucket.TakeAsync(1, ct).ConfigureAwait(false);
    }

    /// <summary>Empties the bucket, after the other side said the connector was throttled.</summary>
    public void Drain() => bucket.Drain();

    /// <summary>
    /// Holds every later turn back until <paramref name="wait"/> from now. A not-before time already further out is
    /// kept, so that concurrent throttle answers never shorten one another's wait.
    /// </summary>
    public void Defer(TimeSpan wait)
    {
        var until = (time.GetUtcNow() + wait).UtcTicks;
        var current = Interlocked.Read(ref _notBeforeTicks);
        while (until > current)
        {
            var seen = Interlocked.CompareExchange(ref _notBeforeTicks, until, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }
}
