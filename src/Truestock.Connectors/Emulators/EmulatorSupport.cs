using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>Small pieces every emulator needs: fault counters, hung requests and bounded request bodies.</summary>
internal static class EmulatorSupport
{
    /// <summary>
    /// Consumes one unit of an injected-fault counter, if any is left. A compare-and-swap loop, so that concurrent
    /// requests never consume more faults than were injected.
    /// </summary>
    public static bool TakeOne(ref int counter)
    {
        while (true)
        {
            var current = Volatile.Read(ref counter);
            if (current <= 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref counter, current - 1, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Hangs a request without answering until the client gives up (its timeout) or the emulator stops: the injected
    /// timeout fault. Returns normally in both cases, because there is nothing left to answer.
    /// </summary>
    public static async Task HangAsync(CancellationToken requestAborted, CancellationToken stopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, stopping);
        try
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The client gave up or the emulator stops: that ends the fault.
        }
    }

    /// <summary>Reads the whole request body; null when it is larger than <paramref name="bytesMax"/>.</summary>
    public static async Task<byte[]?> ReadBodyAsync(HttpRequest request, int bytesMax, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        while (true)
        {
            var read = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false);
            if (read == 0)
            {
                return buffer.ToArray();
            }
            if (buffer.Length + read > bytesMax)
            {
                return null;
            }
            buffer.Write(chunk, 0, read);
        }
    }
}

/// <summary>
/// An emulator's throttle: requests forced to answer 429 on demand, and an optional fixed-window quota (so many
/// requests per window, then 429 until the window ends). Thread-safe.
/// </summary>
internal sealed class EmulatorThrottle
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly int? _requestsPerWindow;
    private readonly TimeSpan _window;
    private long _windowStartTicks;
    private int _windowCount;
    private int _throttleNext;
    private TimeSpan _throttleNextRetryAfter = TimeSpan.FromSeconds(1);

    /// <summary>Creates the throttle; the first window starts now. A null <paramref name="requestsPerWindow"/> means no quota.</summary>
    public EmulatorThrottle(TimeProvider time, int? requestsPerWindow, TimeSpan window)
    {
        _time = time;
        _requestsPerWindow = requestsPerWindow;
        _window = window;
        _windowStartTicks = time.GetUtcNow().UtcTicks;
    }

    /// <summary>The next <paramref name="count"/> requests are throttled with <paramref name="retryAfter"/> (default 1 s).</summary>
    public void ThrottleNext(int count, TimeSpan? retryAfter)
    {
        _throttleNextRetryAfter = retryAfter ?? TimeSpan.FromSeconds(1);
        Interlocked.Exchange(ref _throttleNext, count);
    }

    /// <summary>True when this request is throttled, with how long the client should wait; counts it against the quota otherwise.</summary>
    public bool Throttled(out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (EmulatorSupport.TakeOne(ref _throttleNext))
        {
            retryAfter = _throttleNextRetryAfter;
            return true;
        }
        if (_requestsPerWindow is not { } limit)
        {
            return false;
        }
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            var start = new DateTimeOffset(_windowStartTicks, TimeSpan.Zero);
            if (now - start >= _window)
            {
                _windowStartTicks = now.UtcTicks;
                start = now;
                _windowCount = 0;
            }
            if (_windowCount < limit)
            {
                _windowCount++;
                return false;
            }
            retryAfter = start + _window - now;
            return true;
        }
    }
}
