using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Truestock.Connectors.Emulators;

/// <summary>
/// Starts an emulator: an in-process Kestrel server on a free 127.0.0.1 port that stands in for
/// a channel's API in tests and the demo. Emulators are not the real services; they implement the
/// documented endpoints, payload validation, limits and throttle responses that connectors rely on.
/// </summary>
public static class EmulatorHost
{
    /// <summary>Builds and starts a server with the given routes; returns it and its base address.</summary>
    public static async Task<(WebApplication App, Uri BaseAddress)> StartAsync(Action<WebApplication> map, int port = 0)
    {
        ArgumentNullException.ThrowIfNull(map);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        map(app);
        await app.StartAsync().ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new Uri(address.TrimEnd('/') + "/"));
    }
}

/// <summary>
/// Faults an emulator injects on demand, each consumed by the next matching request: transient
/// errors (HTTP 500/503), timeouts (the request hangs until the client gives up), and SKUs that
/// answer with the channel's permanent error (unknown listing). Thread-safe.
/// </summary>
public sealed class EmulatorFaults
{
    private int _transientErrors;
    private int _timeouts;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _permanent = new(StringComparer.Ordinal);

    /// <summary>The next <paramref name="count"/> requests fail with a transient server error.</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _transientErrors, count);

    /// <summary>The next <paramref name="count"/> requests hang (until the client times out).</summary>
    public void TimeOutNext(int count) => Interlocked.Exchange(ref _timeouts, count);

    /// <summary>Updates of this SKU fail permanently (as an unknown listing) until <see cref="Heal"/>.</summary>
    public void BreakSku(string sku) => _permanent[sku] = true;

    /// <summary>The SKU becomes valid again (the operator fixed the listing).</summary>
    public void Heal(string sku) => _permanent.TryRemove(sku, out _);

    /// <summary>True when the SKU is broken.</summary>
    public bool IsBroken(string sku) => _permanent.ContainsKey(sku);

    /// <summary>Consumes one injected transient error, if any.</summary>
    public bool TakeTransientError() => EmulatorSupport.TakeOne(ref _transientErrors);

    /// <summary>Consumes one injected timeout, if any.</summary>
    public bool TakeTimeout() => EmulatorSupport.TakeOne(ref _timeouts);
}
