using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Truestock.Connectors.Webhook;

namespace Truestock.Connectors.Emulators;

/// <summary>Settings of a <see cref="WebhookEmulator"/>.</summary>
public sealed class WebhookEmulatorOptions
{
    /// <summary>The HMAC secret the receiver verifies signatures with.</summary>
    public string Secret { get; init; } = "emulator-webhook-secret";

    /// <summary>The header carrying the signature.</summary>
    public string SignatureHeader { get; init; } = WebhookSignature.HeaderDefault;

    /// <summary>Requests allowed per <see cref="RateWindow"/>; null means no rate limit.</summary>
    public int? RequestsPerWindow { get; init; }

    /// <summary>The window of <see cref="RequestsPerWindow"/> (a fixed window; 429 with Retry-After until it ends).</summary>
    public TimeSpan RateWindow { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When true, SKUs not added with <see cref="WebhookEmulator.AddListing"/> answer 404.</summary>
    public bool RequireListings { get; init; }

    /// <summary>The largest body accepted (413 beyond).</summary>
    public int BodyBytesMax { get; init; } = 64 * 1024;

    /// <summary>The clock for the rate limit.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>One request as the receiver got it, for tests that check the wire format.</summary>
/// <param name="Body">The raw body bytes.</param>
/// <param name="Headers">The request headers (first value of each).</param>
public sealed record WebhookDelivery(byte[] Body, IReadOnlyDictionary<string, string> Headers);

/// <summary>
/// A test receiver for the webhook connector (an emulator of "some other system", not a real one). It
/// behaves as a well-behaved receiver should: it verifies the HMAC signature over the raw body (401 on
/// mismatch), checks the headers against the body, drops repeats, and keeps a SKU's quantity only when the
/// update's version is higher than the one it holds, so a stale update is acknowledged but ignored. It can
/// rate-limit with 429 + Retry-After and inject faults.
/// </summary>
public sealed class WebhookEmulator : IAsyncDisposable
{
    private readonly WebhookEmulatorOptions _options;
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, (long Version, long Quantity)> _state = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly EmulatorThrottle _throttle;
    private long _requests;
    private long _throttled;
    private long _applied;
    private long _stale;
    private long _duplicates;
    private long _signatureFailures;
    private WebhookDelivery? _lastDelivery;

    private WebhookEmulator(WebhookEmulatorOptions options, WebApplication app, Uri baseAddress)
    {
        _options = options;
        _app = app;
        BaseAddress = baseAddress;
        _throttle = new EmulatorThrottle(options.Time, options.RequestsPerWindow, options.RateWindow);
    }

    /// <summary>The receiver's base address; it accepts POST on any path under it.</summary>
    public Uri BaseAddress { get; }

    /// <summary>A URL to configure as the connector's <c>url</c>.</summary>
    public Uri Url => new(BaseAddress, "truestock/inventory");

    /// <summary>Faults: FailNext answers 503, TimeOutNext hangs, BreakSku answers 422 for that SKU.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>HTTP requests received.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests answered 429.</summary>
    public long ThrottledResponses => Interlocked.Read(ref _throttled);

    /// <summary>Quantity writes applied (a higher version than the one held).</summary>
    public long UpdatesApplied => Interlocked.Read(ref _applied);

    /// <summary>Updates acknowledged but ignored because the receiver already held a higher version.</summary>
    public long StaleIgnored => Interlocked.Read(ref _stale);

    /// <summary>Repeats of the version already held (same idempotency key), acknowledged without effect.</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Requests refused with 401 because the signature did not verify.</summary>
    public long SignatureFailures => Interlocked.Read(ref _signatureFailures);

    /// <summary>The last request that passed the signature check.</summary>
    public WebhookDelivery? LastDelivery => Volatile.Read(ref _lastDelivery);

    /// <summary>The quantity the receiver holds per SKU.</summary>
    public IReadOnlyDictionary<string, long> Quantities => _state.ToDictionary(p => p.Key, p => p.Value.Quantity, StringComparer.Ordinal);

    /// <summary>Starts a receiver on a free local port.</summary>
    public static async Task<WebhookEmulator> StartAsync(WebhookEmulatorOptions? options = null)
    {
        options ??= new WebhookEmulatorOptions();
        WebhookEmulator? emulator = null;
        var (app, address) = await EmulatorHost.StartAsync(map =>
        {
            map.Use(async (context, next) =>
            {
                Interlocked.Increment(ref emulator!._requests);
                await next(context).ConfigureAwait(false);
            });
            map.MapPost("/{**path}", context => emulator!.ReceiveAsync(context));
        }).ConfigureAwait(false);
        emulator = new WebhookEmulator(options, app, address);
        return emulator;
    }

    /// <summary>Creates a listing (version 0) with a starting quantity.</summary>
    public void AddListing(string sku, long quantity = 0) => _state[sku] = (0, quantity);

    /// <summary>The quantity held for the SKU; null when the receiver has none.</summary>
    public long? QuantityOf(string sku) => _state.TryGetValue(sku, out var held) ? held.Quantity : null;

    /// <summary>The version held for the SKU; null when the receiver has none.</summary>
    public long? VersionOf(string sku) => _state.TryGetValue(sku, out var held) ? held.Version : null;

    /// <summary>The next <paramref name="count"/> requests answer 429 with <c>Retry-After</c> (whole seconds, default 1).</summary>
    public void ThrottleNext(int count, TimeSpan? retryAfter = null) => _throttle.ThrottleNext(count, retryAfter);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task ReceiveAsync(HttpContext context)
    {
        if (Faults.TakeTimeout())
        {
            await EmulatorSupport.HangAsync(context.RequestAborted, _stopping.Token).ConfigureAwait(false);
            return;
        }
        if (Faults.TakeTransientError())
        {
            await AnswerAsync(context, 503, "unavailable", "the receiver is temporarily unavailable").ConfigureAwait(false);
            return;
        }
        if (_throttle.Throttled(out var retryAfter))
        {
            Interlocked.Increment(ref _throttled);
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            await AnswerAsync(context, 429, "throttled", "too many requests").ConfigureAwait(false);
            return;
        }

        var body = await ReadBodyAsync(context.Request, context.RequestAborted).ConfigureAwait(false);
        if (body is null)
        {
            await AnswerAsync(context, 413, "too-large", "the body is too large").ConfigureAwait(false);
            return;
        }
        var headers = context.Request.Headers;
        if (!WebhookSignature.Verify(_options.Secret, body, headers[_options.SignatureHeader].ToString()))
        {
            Interlocked.Increment(ref _signatureFailures);
            await AnswerAsync(context, 401, "bad-signature", $"the {_options.SignatureHeader} header does not match the body").ConfigureAwait(false);
            return;
        }
        Volatile.Write(ref _lastDelivery, new WebhookDelivery(body, headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase)));

        if (Parse(body) is not { } update)
        {
            await AnswerAsync(context, 400, "bad-body", "expected {\"channelId\",\"sku\",\"available\",\"version\",\"urgent\",\"sentAt\"}").ConfigureAwait(false);
            return;
        }
        var key = $"{update.ChannelId}:{update.Sku}:{update.Version.ToString(CultureInfo.InvariantCulture)}";
        if (headers["X-Truestock-Channel"] != update.ChannelId
            || headers["X-Truestock-Version"] != update.Version.ToString(CultureInfo.InvariantCulture)
            || headers["Idempotency-Key"] != key)
        {
            await AnswerAsync(context, 400, "bad-headers", "X-Truestock-Channel, X-Truestock-Version and Idempotency-Key must match the body").ConfigureAwait(false);
            return;
        }
        if (Faults.IsBroken(update.Sku))
        {
            // A long body, so tests can see that the sender quotes only a bounded prefix.
            await AnswerAsync(context, 422, "rejected", $"sku {update.Sku} is blocked for sale here. " + new string('x', 4000)).ConfigureAwait(false);
            return;
        }
        if (_options.RequireListings && !_state.ContainsKey(update.Sku))
        {
            await AnswerAsync(context, 404, "unknown-sku", $"sku {update.Sku} is not listed here").ConfigureAwait(false);
            return;
        }

        string result;
        lock (_gate)
        {
            var held = _state.TryGetValue(update.Sku, out var h) ? h : (Version: long.MinValue, Quantity: 0L);
            if (update.Version > held.Version)
            {
                _state[update.Sku] = (update.Version, update.Available);
                Interlocked.Increment(ref _applied);
                result = "applied";
            }
            else if (update.Version == held.Version)
            {
                Interlocked.Increment(ref _duplicates);
                result = "duplicate";
            }
            else
            {
                Interlocked.Increment(ref _stale);
                result = "ignored-stale";
            }
        }
        await AnswerAsync(context, 200, result, null).ConfigureAwait(false);
    }

    private Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken ct) => EmulatorSupport.ReadBodyAsync(request, _options.BodyBytesMax, ct);

    private static Update? Parse(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("channelId", out var channel) && channel.ValueKind == JsonValueKind.String
                && root.TryGetProperty("sku", out var sku) && sku.ValueKind == JsonValueKind.String && sku.GetString()!.Length > 0
                && root.TryGetProperty("available", out var available) && available.TryGetInt64(out var quantity) && quantity >= 0
                && root.TryGetProperty("version", out var version) && version.TryGetInt64(out var number)
                && root.TryGetProperty("urgent", out var urgent) && urgent.ValueKind is JsonValueKind.True or JsonValueKind.False
                && root.TryGetProperty("sentAt", out var sentAt) && sentAt.ValueKind == JsonValueKind.String && sentAt.TryGetDateTimeOffset(out _))
            {
                return new Update(channel.GetString()!, sku.GetString()!, quantity, number);
            }
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            // TryGetInt64 on a non-number.
            return null;
        }
    }

    private static async Task AnswerAsync(HttpContext context, int status, string result, string? detail)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var body = new JsonObject { ["result"] = result };
        if (detail is not null)
        {
            body["detail"] = detail;
        }
        await context.Response.WriteAsync(body.ToJsonString(), Encoding.UTF8, context.RequestAborted).ConfigureAwait(false);
    }

    private sealed record Update(string ChannelId, string Sku, long Available, long Version);
}
