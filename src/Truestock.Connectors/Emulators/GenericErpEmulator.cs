using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>Settings of a <see cref="GenericErpEmulator"/>.</summary>
public sealed class GenericErpEmulatorOptions
{
    /// <summary>The secret the ERP expects in <see cref="AuthHeader"/>.</summary>
    public string ApiKey { get; init; } = "emulator-erp-key";

    /// <summary>The header carrying the secret.</summary>
    public string AuthHeader { get; init; } = "X-Api-Key";

    /// <summary>Requests allowed per <see cref="RateWindow"/> (the quota); null means none.</summary>
    public int? RequestsPerWindow { get; init; }

    /// <summary>The window of the quota (a fixed window; 429 with Retry-After until it ends).</summary>
    public TimeSpan RateWindow { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Most movements per request (413 beyond).</summary>
    public int BatchSizeMax { get; init; } = 1000;

    /// <summary>The largest body accepted (413 beyond).</summary>
    public int BodyBytesMax { get; init; } = 4 * 1024 * 1024;

    /// <summary>The clock of the quota.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>A movement the emulated ERP booked.</summary>
/// <param name="Key">The idempotency key it was booked under.</param>
/// <param name="DocumentId">The ERP document that books it.</param>
/// <param name="Sku">The SKU.</param>
/// <param name="LocationId">The location.</param>
/// <param name="Type">The hub's event type.</param>
/// <param name="OnHandDelta">The on-hand change booked.</param>
public sealed record BookedMovement(string Key, string DocumentId, string Sku, string LocationId, string Type, long OnHandDelta);

/// <summary>
/// An in-process stand-in for a REST/JSON ERP, speaking the wire format of <see cref="Erp.RestErpConnector"/>
/// (<c>POST /api/stock-movements</c>). It checks the secret header (401), the content type (415), the body size and
/// batch size (413) and every movement's fields (422 for the whole request, as a schema check would), books each key at
/// most once (a repeated key answers <c>duplicate</c> with the document it was booked in, and is counted), rejects
/// movements of broken SKUs with a permanent error, enforces a quota with 429 + Retry-After, and can be taken down
/// (503, or connections refused), brought back and slowed down.
/// </summary>
public sealed class GenericErpEmulator : IAsyncDisposable
{
    private readonly GenericErpEmulatorOptions _options;
    private readonly ErpEmulatorControls _controls;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, BookedMovement> _byKey = new(StringComparer.Ordinal);
    private readonly List<BookedMovement> _booked = [];
    private long _duplicates;
    private long _rejected;
    private long _nextDocument;

    private GenericErpEmulator(GenericErpEmulatorOptions options, ErpEmulatorControls controls)
    {
        _options = options;
        _controls = controls;
    }

    /// <summary>The ERP's base address.</summary>
    public Uri BaseAddress => _controls.BaseAddress;

    /// <summary>The URL to configure as the connector's <c>Url</c>.</summary>
    public Uri Url => new(BaseAddress, "api/stock-movements");

    /// <summary>Faults: FailNext answers 500, TimeOutNext hangs, BreakSku rejects that SKU's movements permanently.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>HTTP requests received (including refused, throttled and failed ones).</summary>
    public long Requests => _controls.Requests;

    /// <summary>Requests answered 429 (over the quota, or forced).</summary>
    public long ThrottledResponses => _controls.ThrottledCount;

    /// <summary>Requests answered 503 while the ERP was down.</summary>
    public long UnavailableResponses => _controls.UnavailableCount;

    /// <summary>Movements booked (each key once).</summary>
    public long BookedCount
    {
        get
        {
            lock (_gate)
            {
                return _booked.Count;
            }
        }
    }

    /// <summary>Movements sent again under a key already booked (answered <c>duplicate</c>, not booked again).</summary>
    public long DuplicateAttempts => Interlocked.Read(ref _duplicates);

    /// <summary>Movements rejected (broken SKUs).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Every booked movement, in booking order.</summary>
    public IReadOnlyList<BookedMovement> Booked
    {
        get
        {
            lock (_gate)
            {
                return _booked.ToArray();
            }
        }
    }

    /// <summary>Starts the ERP on a free local port.</summary>
    public static async Task<GenericErpEmulator> StartAsync(GenericErpEmulatorOptions? options = null)
    {
        options ??= new GenericErpEmulatorOptions();
        GenericErpEmulator? emulator = null;
        var controls = await ErpEmulatorControls.StartAsync(app =>
        {
            app.MapPost("/api/stock-movements", context => emulator!.ReceiveAsync(context));
        }, options.Time, options.RequestsPerWindow, options.RateWindow).ConfigureAwait(false);
        emulator = new GenericErpEmulator(options, controls);
        return emulator;
    }

    /// <summary>The on-hand the ERP's books show for a SKU at a location: the sum of its booked movements.</summary>
    public long OnHand(string sku, string locationId)
    {
        lock (_gate)
        {
            return _booked.Where(b => b.Sku == sku && b.LocationId == locationId).Sum(b => b.OnHandDelta);
        }
    }

    /// <summary>Takes the ERP down: 503 with Retry-After, or with <paramref name="refuseConnections"/> its port closes.</summary>
    public Task TakeDownAsync(bool refuseConnections = false) => _controls.TakeDownAsync(refuseConnections);

    /// <summary>Brings the ERP back on the same address, with its books intact.</summary>
    public Task BringUpAsync() => _controls.BringUpAsync();

    /// <summary>Every request waits this long before it is handled (null: no delay).</summary>
    public void SlowDown(TimeSpan? delay) => _controls.SlowDown(delay);

    /// <summary>The next <paramref name="count"/> requests answer 429 with Retry-After (default 1 s).</summary>
    public void ThrottleNext(int count, TimeSpan? retryAfter = null) => _controls.ThrottleNext(count, retryAfter);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _controls.DisposeAsync();

    private async Task ReceiveAsync(HttpContext context)
    {
        if (Faults.TakeTimeout())
        {
            await EmulatorSupport.HangAsync(context.RequestAborted, _controls.Stopping).ConfigureAwait(false);
            return;
        }
        if (Faults.TakeTransientError())
        {
            await AnswerAsync(context, 500, new JsonObject { ["error"] = "internal", ["detail"] = "the ledger service failed; try again" }).ConfigureAwait(false);
            return;
        }
        var key = context.Request.Headers[_options.AuthHeader].ToString();
        if (key != _options.ApiKey)
        {
            await AnswerAsync(context, 401, new JsonObject { ["error"] = "unauthorized", ["detail"] = $"missing or wrong {_options.AuthHeader}" }).ConfigureAwait(false);
            return;
        }
        if (context.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            await AnswerAsync(context, 415, new JsonObject { ["error"] = "unsupported-media-type", ["detail"] = "send application/json" }).ConfigureAwait(false);
            return;
        }
        var body = await ReadBodyAsync(context.Request, context.RequestAborted).ConfigureAwait(false);
        if (body is null)
        {
            await AnswerAsync(context, 413, new JsonObject { ["error"] = "too-large", ["detail"] = "the body is too large" }).ConfigureAwait(false);
            return;
        }
        List<Movement> movements;
        try
        {
            using var document = JsonDocument.Parse(body);
            var (parsed, problem, status) = Parse(document.RootElement);
            if (problem is not null)
            {
                await AnswerAsync(context, status, new JsonObject { ["error"] = status == 413 ? "too-large" : "validation", ["detail"] = problem }).ConfigureAwait(false);
                return;
            }
            movements = parsed!;
        }
        catch (JsonException ex)
        {
            await AnswerAsync(context, 400, new JsonObject { ["error"] = "bad-json", ["detail"] = ex.Message }).ConfigureAwait(false);
            return;
        }

        var results = new JsonArray();
        lock (_gate)
        {
            foreach (var m in movements)
            {
                if (_byKey.TryGetValue(m.Key, out var earlier))
                {
                    Interlocked.Increment(ref _duplicates);
                    results.Add(new JsonObject { ["key"] = m.Key, ["status"] = "duplicate", ["documentId"] = earlier.DocumentId });
                }
                else if (Faults.IsBroken(m.Sku))
                {
                    Interlocked.Increment(ref _rejected);
                    results.Add(new JsonObject { ["key"] = m.Key, ["status"] = "rejected", ["error"] = $"Item '{m.Sku}' is blocked for posting (item status: blocked)." });
                }
                else
                {
                    var booked = new BookedMovement(m.Key, "MV-" + (++_nextDocument).ToString("D6", CultureInfo.InvariantCulture), m.Sku, m.LocationId, m.Type, m.OnHandDelta);
                    _byKey[m.Key] = booked;
                    _booked.Add(booked);
                    results.Add(new JsonObject { ["key"] = m.Key, ["status"] = "booked", ["documentId"] = booked.DocumentId });
                }
            }
        }
        await AnswerAsync(context, 200, new JsonObject { ["results"] = results }).ConfigureAwait(false);
    }

    private (List<Movement>? Movements, string? Problem, int Status) Parse(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("movements", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            return (null, "expected {\"movements\": [...]}", 422);
        }
        var count = list.GetArrayLength();
        if (count == 0)
        {
            return (null, "movements must not be empty", 422);
        }
        if (count > _options.BatchSizeMax)
        {
            return (null, $"at most {_options.BatchSizeMax} movements per request; got {count}", 413);
        }
        var movements = new List<Movement>(count);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var i = 0;
        foreach (var m in list.EnumerateArray())
        {
            var at = $"movements[{i++}]";
            if (m.ValueKind != JsonValueKind.Object)
            {
                return (null, $"{at} must be an object", 422);
            }
            string? Text(string name, int lengthMax) =>
                m.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s && s.Length <= lengthMax ? s : null;
            long? Integer(string name) =>
                m.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;
            var key = Text("key", 200);
            var sku = Text("sku", 64);
            var location = Text("locationId", 64);
            var type = Text("type", 64);
            var delta = Integer("onHandDelta");
            if (key is null || Text("eventId", 64) is null || sku is null || location is null || type is null || Text("source", 64) is null)
            {
                return (null, $"{at}: key, eventId, sku, locationId, type and source are required strings", 422);
            }
            if (delta is null or 0 || Integer("quantity") is null || Integer("onHandAfter") is null)
            {
                return (null, $"{at}: onHandDelta must be a non-zero integer; quantity and onHandAfter integers", 422);
            }
            if (!m.TryGetProperty("occurredAt", out var occurred) || occurred.ValueKind != JsonValueKind.String
                || !DateTimeOffset.TryParseExact(occurred.GetString(), "O", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            {
                return (null, $"{at}: occurredAt must be an RFC 3339 timestamp with an offset", 422);
            }
            if (!keys.Add(key))
            {
                return (null, $"{at}: key '{key}' appears twice in the request", 422);
            }
            movements.Add(new Movement(key, sku, location, type, delta.Value));
        }
        return (movements, null, 200);
    }

    private Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken ct) => EmulatorSupport.ReadBodyAsync(request, _options.BodyBytesMax, ct);

    private static async Task AnswerAsync(HttpContext context, int status, JsonObject body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted).ConfigureAwait(false);
    }

    private sealed record Movement(string Key, string Sku, string LocationId, string Type, long OnHandDelta);
}
