using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>
/// What the ERP emulators share: a server that can be taken down (answering 503, or refusing connections by closing its
/// port) and brought back on the same address, made slow, and a fixed-window quota answered with 429 and Retry-After.
/// </summary>
internal sealed class ErpEmulatorControls : IAsyncDisposable
{
    private readonly Action<WebApplication> _map;
    private readonly EmulatorThrottle _throttle;
    private readonly CancellationTokenSource _stopping = new();
    private WebApplication? _app;
    private int _port;
    private volatile bool _unavailable;
    private long _delayTicks;
    private long _requests;
    private long _throttled;
    private long _refused;

    private ErpEmulatorControls(Action<WebApplication> map, TimeProvider time, int? requestsPerWindow, TimeSpan window)
    {
        _map = map;
        _throttle = new EmulatorThrottle(time, requestsPerWindow, window);
    }

    public Uri BaseAddress { get; private set; } = null!;

    public long Requests => Interlocked.Read(ref _requests);

    public long ThrottledCount => Interlocked.Read(ref _throttled);

    public long UnavailableCount => Interlocked.Read(ref _refused);

    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Starts the server; <paramref name="routes"/> maps the emulated API behind the shared middleware.</summary>
    public static async Task<ErpEmulatorControls> StartAsync(Action<WebApplication> routes, TimeProvider time, int? requestsPerWindow, TimeSpan window)
    {
        ErpEmulatorControls? controls = null;
        controls = new ErpEmulatorControls(app =>
        {
            app.Use((context, next) => controls!.GuardAsync(context, next));
            routes(app);
        }, time, requestsPerWindow, window);
        await controls.StartServerAsync(0).ConfigureAwait(false);
        return controls;
    }

    /// <summary>
    /// Takes the service down: it answers every request with 503 and Retry-After, or, with
    /// <paramref name="refuseConnections"/>, closes its port so that connections are refused.
    /// </summary>
    public async Task TakeDownAsync(bool refuseConnections)
    {
        _unavailable = true;
        if (refuseConnections && _app is { } app)
        {
            _app = null;
            await app.StopAsync().ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Brings the service back on the same address, with everything it had booked.</summary>
    public async Task BringUpAsync()
    {
        if (_app is null)
        {
            await StartServerAsync(_port).ConfigureAwait(false);
        }
        _unavailable = false;
    }

    /// <summary>Every request waits this long before it is handled (null or zero: no delay).</summary>
    public void SlowDown(TimeSpan? delay) => Interlocked.Exchange(ref _delayTicks, Math.Max(0, delay?.Ticks ?? 0));

    /// <summary>The next <paramref name="count"/> requests answer 429 with Retry-After.</summary>
    public void ThrottleNext(int count, TimeSpan? retryAfter) => _throttle.ThrottleNext(count, retryAfter);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync().ConfigureAwait(false);
            await app.DisposeAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }

    private async Task StartServerAsync(int port)
    {
        var (app, address) = await EmulatorHost.StartAsync(_map, port).ConfigureAwait(false);
        _app = app;
        BaseAddress = address;
        _port = address.Port;
    }

    private async Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        Interlocked.Increment(ref _requests);
        var delay = TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks));
        if (delay > TimeSpan.Zero)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
            try
            {
                await Task.Delay(delay, linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The client gave up waiting (its timeout) or the emulator stops: nothing to answer.
                return;
            }
        }
        if (_unavailable)
        {
            Interlocked.Increment(ref _refused);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers.RetryAfter = "1";
            context.Response.ContentType = "text/html";
            await context.Response.WriteAsync("<html><body><h1>503 Service Unavailable</h1></body></html>", context.RequestAborted).ConfigureAwait(false);
            return;
        }
        if (_throttle.Throttled(out var retryAfter))
        {
            Interlocked.Increment(ref _throttled);
            context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            context.Response.ContentType = "text/html";
            await context.Response.WriteAsync("<html><body><h1>429 Too Many Requests</h1></body></html>", context.RequestAborted).ConfigureAwait(false);
            return;
        }
        await next(context).ConfigureAwait(false);
    }
}
