using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>Settings of a <see cref="StockLevelSourceEmulator"/>.</summary>
public sealed class StockLevelSourceEmulatorOptions
{
    /// <summary>Most items the emulator puts in one page (it serves the smaller of this and the caller's <c>limit</c>).</summary>
    public int PageSize { get; init; } = 100;

    /// <summary>The header that must carry <see cref="AuthValue"/>.</summary>
    public string AuthHeader { get; init; } = "Authorization";

    /// <summary>The value the auth header must have; null serves without authentication.</summary>
    public string? AuthValue { get; init; }

    /// <summary>The clock of <c>asOf</c> when <see cref="StockLevelSourceEmulator.AsOf"/> is not set.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// A stand-in for a system that publishes no events but answers its stock levels over HTTP (a WMS, a
/// 3PL portal, a store system), for tests and the demo; an emulator, not a real product. It serves the
/// wire format of polling sources (docs/ingestion.md, "Polling sources"):
/// <c>GET {Url}?limit=&amp;cursor=</c> → <c>{ "asOf", "items": [ { "sku", "location", "onHand", "countedAt"? } ], "next"? }</c>,
/// paginated with an opaque cursor, items in (sku, location) order. It checks an auth header when
/// configured (401 otherwise), and can inject faults: transient errors and hangs (<see cref="Faults"/>),
/// malformed pages (<see cref="BreakPage"/>) and items that break the item rules (<see cref="AddRawItem"/>).
/// </summary>
public sealed class StockLevelSourceEmulator : IAsyncDisposable
{
    private const string CursorPrefix = "o";

    private readonly StockLevelSourceEmulatorOptions _options;
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private readonly SortedDictionary<(string Sku, string? Location), (long OnHand, DateTimeOffset? CountedAt)> _levels = new(LevelOrder.Instance);
    private readonly List<string> _rawItems = [];
    private readonly Dictionary<int, string> _brokenPages = [];
    private readonly List<string> _queries = [];
    private DateTimeOffset? _asOf;
    private long _requests;
    private long _authFailures;

    private StockLevelSourceEmulator(StockLevelSourceEmulatorOptions options, WebApplication app, Uri baseAddress)
    {
        _options = options;
        _app = app;
        BaseAddress = baseAddress;
    }

    /// <summary>The emulator's base address.</summary>
    public Uri BaseAddress { get; }

    /// <summary>The address to configure as the polling source's <c>Url</c>.</summary>
    public Uri Url => new(BaseAddress, "stock-levels");

    /// <summary>Faults: FailNext answers 503 (with Retry-After: 1), TimeOutNext hangs until the caller gives up.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>Page requests received (any answer).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests refused with 401 for a missing or wrong auth header.</summary>
    public long AuthFailures => Interlocked.Read(ref _authFailures);

    /// <summary>The query strings of the page requests, in order (for tests of pagination).</summary>
    public IReadOnlyList<string> Queries
    {
        get
        {
            lock (_gate)
            {
                return [.. _queries];
            }
        }
    }

    /// <summary>The <c>asOf</c> of every page; null means the clock's time at each request.</summary>
    public DateTimeOffset? AsOf
    {
        get
        {
            lock (_gate)
            {
                return _asOf;
            }
        }
        set
        {
            lock (_gate)
            {
                _asOf = value;
            }
        }
    }

    /// <summary>Starts an emulator on a free local port.</summary>
    public static async Task<StockLevelSourceEmulator> StartAsync(StockLevelSourceEmulatorOptions? options = null)
    {
        options ??= new StockLevelSourceEmulatorOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PageSize, 1);
        StockLevelSourceEmulator? emulator = null;
        var (app, address) = await EmulatorHost.StartAsync(map =>
            map.MapGet("/stock-levels", context => emulator!.ServeAsync(context))).ConfigureAwait(false);
        emulator = new StockLevelSourceEmulator(options, app, address);
        return emulator;
    }

    /// <summary>Sets the level of a SKU at a location (null: an item without a location); <paramref name="countedAt"/> null means as of the page.</summary>
    public void SetLevel(string sku, string? location, long onHand, DateTimeOffset? countedAt = null)
    {
        ArgumentNullException.ThrowIfNull(sku);
        lock (_gate)
        {
            _levels[(sku, location)] = (onHand, countedAt);
        }
    }

    /// <summary>Removes a SKU at a location from the levels served.</summary>
    public void RemoveLevel(string sku, string? location)
    {
        lock (_gate)
        {
            _levels.Remove((sku, location));
        }
    }

    /// <summary>Serves no levels from now on (raw items stay).</summary>
    public void ClearLevels()
    {
        lock (_gate)
        {
            _levels.Clear();
        }
    }

    /// <summary>Serves this JSON text, as is, as an item after the levels: for items that break the item rules.</summary>
    public void AddRawItem(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using (JsonDocument.Parse(json))
        {
            // Checked to be one JSON value, so that the page around it stays valid JSON.
        }
        lock (_gate)
        {
            _rawItems.Add(json);
        }
    }

    /// <summary>Page <paramref name="page"/> (1-based) answers 200 with <paramref name="body"/> (by default JSON cut off mid-way) until <see cref="HealPages"/>.</summary>
    public void BreakPage(int page, string? body = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(page, 1);
        lock (_gate)
        {
            _brokenPages[page] = body ?? "{\"asOf\":\"2026-11-23T09:00:00Z\",\"items\":[{\"sku\":\"A\",\"onHa";
        }
    }

    /// <summary>Every page is served well again.</summary>
    public void HealPages()
    {
        lock (_gate)
        {
            _brokenPages.Clear();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task ServeAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requests);
        lock (_gate)
        {
            _queries.Add(context.Request.QueryString.Value ?? "");
        }
        if (Faults.TakeTimeout())
        {
            await EmulatorSupport.HangAsync(context.RequestAborted, _stopping.Token).ConfigureAwait(false);
            return;
        }
        if (Faults.TakeTransientError())
        {
            context.Response.Headers.RetryAfter = "1";
            await AnswerAsync(context, 503, """{"error":"unavailable","detail":"the source is temporarily unavailable"}""").ConfigureAwait(false);
            return;
        }
        if (_options.AuthValue is { } expected && !Matches(context.Request.Headers[_options.AuthHeader].ToString(), expected))
        {
            Interlocked.Increment(ref _authFailures);
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await AnswerAsync(context, 401, $$"""{"error":"unauthorized","detail":"the {{_options.AuthHeader}} header is missing or wrong"}""").ConfigureAwait(false);
            return;
        }

        var pageSize = _options.PageSize;
        if (context.Request.Query["limit"].ToString() is { Length: > 0 } limitText)
        {
            if (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out var limit) || limit < 1)
            {
                await AnswerAsync(context, 400, """{"error":"bad-limit","detail":"limit must be a whole number of 1 or more"}""").ConfigureAwait(false);
                return;
            }
            pageSize = Math.Min(pageSize, limit);
        }
        var offset = 0;
        if (context.Request.Query["cursor"].ToString() is { Length: > 0 } cursor)
        {
            if (!cursor.StartsWith(CursorPrefix, StringComparison.Ordinal)
                || !int.TryParse(cursor.AsSpan(CursorPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out offset))
            {
                await AnswerAsync(context, 400, """{"error":"bad-cursor","detail":"cursor must be a next value of an earlier page"}""").ConfigureAwait(false);
                return;
            }
        }

        string body;
        lock (_gate)
        {
            var page = offset / pageSize + 1;
            body = _brokenPages.TryGetValue(page, out var broken) ? broken : Page(offset, pageSize);
        }
        await AnswerAsync(context, 200, body).ConfigureAwait(false);
    }

    /// <summary>One page of the levels then the raw items, from <paramref name="offset"/>; called under the lock.</summary>
    private string Page(int offset, int pageSize)
    {
        var all = _levels.Select(l => new Served(null, l.Key.Sku, l.Key.Location, l.Value.OnHand, l.Value.CountedAt))
            .Concat(_rawItems.Select(r => new Served(r, "", null, 0, null)))
            .ToList();
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("asOf", (_asOf ?? _options.Time.GetUtcNow()).ToString("O", CultureInfo.InvariantCulture));
            json.WriteStartArray("items");
            foreach (var item in all.Skip(offset).Take(pageSize))
            {
                if (item.Raw is not null)
                {
                    json.WriteRawValue(item.Raw);
                    continue;
                }
                json.WriteStartObject();
                json.WriteString("sku", item.Sku);
                if (item.Location is not null)
                {
                    json.WriteString("location", item.Location);
                }
                json.WriteNumber("onHand", item.OnHand);
                if (item.CountedAt is { } at)
                {
                    json.WriteString("countedAt", at.ToString("O", CultureInfo.InvariantCulture));
                }
                json.WriteEndObject();
            }
            json.WriteEndArray();
            if (offset + pageSize < all.Count)
            {
                json.WriteString("next", CursorPrefix + (offset + pageSize).ToString(CultureInfo.InvariantCulture));
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static bool Matches(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));

    private static async Task AnswerAsync(HttpContext context, int status, string json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(json, Encoding.UTF8, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>One item of a page: a level, or raw JSON text.</summary>
    private sealed record Served(string? Raw, string Sku, string? Location, long OnHand, DateTimeOffset? CountedAt);

    /// <summary>Items in (sku, location) order, ordinal, an item without a location first.</summary>
    private sealed class LevelOrder : IComparer<(string Sku, string? Location)>
    {
        public static readonly LevelOrder Instance = new();

        public int Compare((string Sku, string? Location) x, (string Sku, string? Location) y)
        {
            var bySku = string.CompareOrdinal(x.Sku, y.Sku);
            return bySku != 0 ? bySku : string.CompareOrdinal(x.Location, y.Location);
        }
    }
}
