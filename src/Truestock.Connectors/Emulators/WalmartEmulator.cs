using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>Settings of a <see cref="WalmartEmulator"/>. Limits default to Walmart's documented values.</summary>
public sealed class WalmartEmulatorOptions
{
    /// <summary>The client id the Token API accepts.</summary>
    public string ClientId { get; init; } = "emulator-client-id";

    /// <summary>The client secret the Token API accepts.</summary>
    public string ClientSecret { get; init; } = "emulator-client-secret";

    /// <summary>How long an access token lives (Walmart: 15 minutes).</summary>
    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Single-item inventory updates allowed per <see cref="InventoryWindow"/> (Walmart: 200 a minute).</summary>
    public int InventoryCallsPerWindow { get; init; } = 200;

    /// <summary>The window of <see cref="InventoryCallsPerWindow"/>; tokens come back gradually over it.</summary>
    public TimeSpan InventoryWindow { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Inventory feeds allowed per <see cref="FeedWindow"/> (Walmart: 10 an hour).</summary>
    public int FeedsPerWindow { get; init; } = 10;

    /// <summary>The window of <see cref="FeedsPerWindow"/>.</summary>
    public TimeSpan FeedWindow { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Feed status calls allowed per <see cref="FeedStatusWindow"/> (Walmart: 5000 a minute).</summary>
    public int FeedStatusCallsPerWindow { get; init; } = 5000;

    /// <summary>The window of <see cref="FeedStatusCallsPerWindow"/>.</summary>
    public TimeSpan FeedStatusWindow { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a feed takes to process: RECEIVED, then INPROGRESS at half, PROCESSED at the end.</summary>
    public TimeSpan FeedProcessingDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The largest feed file (Walmart: 5 MB for inventory feeds).</summary>
    public long FeedFileBytesMax { get; init; } = 5 * 1024 * 1024;

    /// <summary>Ship nodes the seller owns; null accepts any (the default node is always accepted).</summary>
    public IReadOnlyCollection<string>? ShipNodes { get; init; }

    /// <summary>The clock for token expiry, rate limits and feed processing.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// An emulator of the Walmart US Marketplace APIs the Walmart connector uses (it is not Walmart): the Token
/// API, the single-item inventory update, the inventory feed with asynchronous processing, and the feed
/// status with item details. It checks the auth headers, validates payloads and answers with Walmart's
/// error shapes, enforces the per-API limits with 429 and Walmart's rate headers, and injects faults.
/// </summary>
public sealed class WalmartEmulator : IAsyncDisposable
{
    private readonly WalmartEmulatorOptions _options;
    private readonly TimeProvider _time;
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, long> _quantities = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string?> _shipNodes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Feed> _feeds = new(StringComparer.Ordinal);
    private readonly Lock _applyGate = new();
    private readonly RateWindow _inventoryLimit;
    private readonly RateWindow _feedLimit;
    private readonly RateWindow _statusLimit;
    private long _requests;
    private long _throttled;
    private long _applied;
    private long _inventoryCalls;
    private long _feedsSubmitted;
    private long _tokensIssued;
    private int _throttleNext;
    private int _systemErrorItemsNext;

    private WalmartEmulator(WalmartEmulatorOptions options, WebApplication app, Uri baseAddress)
    {
        _options = options;
        _time = options.Time;
        _app = app;
        BaseAddress = baseAddress;
        _inventoryLimit = new RateWindow(options.InventoryCallsPerWindow, options.InventoryWindow, _time);
        _feedLimit = new RateWindow(options.FeedsPerWindow, options.FeedWindow, _time);
        _statusLimit = new RateWindow(options.FeedStatusCallsPerWindow, options.FeedStatusWindow, _time);
    }

    /// <summary>The emulator's base address (use it as the connector's <c>baseUrl</c>).</summary>
    public Uri BaseAddress { get; }

    /// <summary>Faults injected into the inventory and feed endpoints (not the Token API).</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>HTTP requests received (all endpoints).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests answered 429.</summary>
    public long ThrottledResponses => Interlocked.Read(ref _throttled);

    /// <summary>Quantity writes applied (accepted single-item updates plus SUCCESS feed items).</summary>
    public long UpdatesApplied => Interlocked.Read(ref _applied);

    /// <summary>Single-item inventory update requests received.</summary>
    public long InventoryCalls => Interlocked.Read(ref _inventoryCalls);

    /// <summary>Inventory feeds accepted (given a feed id).</summary>
    public long FeedsSubmitted => Interlocked.Read(ref _feedsSubmitted);

    /// <summary>Access tokens issued by the Token API.</summary>
    public long TokensIssued => Interlocked.Read(ref _tokensIssued);

    /// <summary>Feeds not yet PROCESSED or ERROR.</summary>
    public int FeedsProcessing => _feeds.Values.Count(f => f.Status is "RECEIVED" or "INPROGRESS");

    /// <summary>The quantity Walmart shows per listed SKU.</summary>
    public IReadOnlyDictionary<string, long> Quantities => new Dictionary<string, long>(_quantities, StringComparer.Ordinal);

    /// <summary>Starts an emulator on a free local port.</summary>
    public static async Task<WalmartEmulator> StartAsync(WalmartEmulatorOptions? options = null)
    {
        options ??= new WalmartEmulatorOptions();
        WalmartEmulator? emulator = null;
        var (app, address) = await EmulatorHost.StartAsync(map => Map(map, () => emulator!)).ConfigureAwait(false);
        emulator = new WalmartEmulator(options, app, address);
        return emulator;
    }

    /// <summary>Creates a listing (the SKU exists on Walmart with this quantity).</summary>
    public void AddListing(string sku, long quantity = 0) => _quantities[sku] = quantity;

    /// <summary>The quantity Walmart shows for the SKU; null when it is not listed.</summary>
    public long? QuantityOf(string sku) => _quantities.TryGetValue(sku, out var quantity) ? quantity : null;

    /// <summary>The ship node of the SKU's last write (null = the seller's default node).</summary>
    public string? ShipNodeOf(string sku) => _shipNodes.TryGetValue(sku, out var node) ? node : null;

    /// <summary>Makes every access token issued so far invalid (as if they had expired).</summary>
    public void ExpireAccessTokens() => _tokens.Clear();

    /// <summary>The next <paramref name="count"/> single-item updates are throttled (the bucket is emptied, as if other calls had spent it).</summary>
    public void ThrottleNext(int count) => Interlocked.Exchange(ref _throttleNext, count);

    /// <summary>The next <paramref name="count"/> feed items processed end in SYSTEM_ERROR.</summary>
    public void SystemErrorNextFeedItems(int count) => Interlocked.Exchange(ref _systemErrorItemsNext, count);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private static void Map(WebApplication app, Func<WalmartEmulator> emulator)
    {
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref emulator()._requests);
            await next(context).ConfigureAwait(false);
        });
        app.MapPost("/v3/token", context => emulator().TokenAsync(context));
        app.MapPut("/v3/inventory", context => emulator().UpdateInventoryAsync(context));
        app.MapPost("/v3/feeds", context => emulator().SubmitFeedAsync(context));
        app.MapGet("/v3/feeds/{feedId}", context => emulator().FeedStatusAsync(context));
    }

    // ---- Token API ---------------------------------------------------------------------------

    private async Task TokenAsync(HttpContext context)
    {
        var request = context.Request;
        if (MissingHeader(request) is { } missing)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_HEADER.GMP_GATEWAY_API", missing, $"The {missing} header is required.", "REQUEST").ConfigureAwait(false);
            return;
        }
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_options.ClientId}:{_options.ClientSecret}"));
        if (!FixedTimeEquals(request.Headers.Authorization.ToString(), expected))
        {
            await ErrorAsync(context, 401, "error", "UNAUTHORIZED.GMP_GATEWAY_API", "UNAUTHORIZED", "Unauthorized",
                "DATA", "Unauthorized token or incorrect authorization header. Please verify correct format: Authorization: Basic Base64Encode(clientId:clientSecret)").ConfigureAwait(false);
            return;
        }
        if (!request.HasFormContentType || (await request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false))["grant_type"] != "client_credentials")
        {
            await ErrorAsync(context, 400, "error", "INVALID_REQUEST_CONTENT.GMP_GATEWAY_API", "grant_type", "grant_type must be client_credentials (form-encoded).", "REQUEST").ConfigureAwait(false);
            return;
        }
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
        _tokens[token] = _time.GetUtcNow() + _options.TokenLifetime;
        Interlocked.Increment(ref _tokensIssued);
        await JsonAsync(context, 200, new JsonObject
        {
            ["access_token"] = token,
            ["token_type"] = "Bearer",
            ["expires_in"] = (long)_options.TokenLifetime.TotalSeconds,
        }).ConfigureAwait(false);
    }

    /// <summary>Checks the headers every Marketplace call needs; answers the error and returns false when they fail.</summary>
    private async Task<bool> AuthorizedAsync(HttpContext context)
    {
        if (MissingHeader(context.Request) is { } missing)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_HEADER.GMP_GATEWAY_API", missing, $"The {missing} header is required.", "REQUEST").ConfigureAwait(false);
            return false;
        }
        var token = context.Request.Headers["WM_SEC.ACCESS_TOKEN"].ToString();
        if (string.IsNullOrEmpty(token) || !_tokens.TryGetValue(token, out var expires) || expires <= _time.GetUtcNow())
        {
            await ErrorAsync(context, 401, "errors", "UNAUTHORIZED.GMP_GATEWAY_API", "UNAUTHORIZED", "Unauthorized",
                "DATA", "Unauthorized token or incorrect authorization header.").ConfigureAwait(false);
            return false;
        }
        return true;
    }

    private static string? MissingHeader(HttpRequest request) =>
        string.IsNullOrWhiteSpace(request.Headers["WM_SVC.NAME"]) ? "WM_SVC.NAME"
        : string.IsNullOrWhiteSpace(request.Headers["WM_QOS.CORRELATION_ID"]) ? "WM_QOS.CORRELATION_ID"
        : null;

    // ---- PUT /v3/inventory ----------------------------------------------------------------------

    private async Task UpdateInventoryAsync(HttpContext context)
    {
        Interlocked.Increment(ref _inventoryCalls);
        if (!await AuthorizedAsync(context).ConfigureAwait(false) || !await FaultAsync(context).ConfigureAwait(false))
        {
            return;
        }
        if (EmulatorSupport.TakeOne(ref _throttleNext))
        {
            _inventoryLimit.Drain();
        }
        if (!await AdmitAsync(context, _inventoryLimit).ConfigureAwait(false))
        {
            return;
        }

        var sku = context.Request.Query["sku"].ToString();
        if (string.IsNullOrEmpty(sku))
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_PARAM.GMP_INVENTORY_API", "sku", "The sku query parameter is required.", "REQUEST").ConfigureAwait(false);
            return;
        }
        var shipNode = context.Request.Query["shipNode"].ToString() is { Length: > 0 } node ? node : null;
        if (shipNode is not null && _options.ShipNodes is { } nodes && !nodes.Contains(shipNode))
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_PARAM.GMP_INVENTORY_API", "shipNode", $"Ship node {shipNode} does not belong to the seller.", "DATA").ConfigureAwait(false);
            return;
        }
        JsonNode? body;
        try
        {
            body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            await ErrorAsync(context, 400, "errors", "MALFORMED_REQUEST_CONTENT.GMP_INVENTORY_API", "body", "The request body is not valid JSON.", "REQUEST").ConfigureAwait(false);
            return;
        }
        if (ItemProblem(body, out var bodySku, out var amount) is { } problem)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API", problem.Field, problem.Message, "DATA").ConfigureAwait(false);
            return;
        }
        if (bodySku != sku)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API", "sku", "The sku in the body does not match the sku query parameter.", "DATA").ConfigureAwait(false);
            return;
        }
        if (!Apply(sku, amount, shipNode))
        {
            await ErrorAsync(context, 404, "errors", "CONTENT_NOT_FOUND.GMP_INVENTORY_API", "sku", "Item not found", "APPLICATION", "Requested content could not be found.").ConfigureAwait(false);
            return;
        }
        await JsonAsync(context, 200, new JsonObject
        {
            ["sku"] = sku,
            ["quantity"] = new JsonObject { ["unit"] = "EACH", ["amount"] = amount },
        }).ConfigureAwait(false);
    }

    /// <summary>Validates one inventory item (<c>{"sku","quantity":{"unit":"EACH","amount"}}</c>) like the API's schema does.</summary>
    private static (string Field, string Message)? ItemProblem(JsonNode? item, out string sku, out long amount)
    {
        sku = "";
        amount = 0;
        if (item is not JsonObject obj)
        {
            return ("body", "The inventory item must be a JSON object.");
        }
        if (obj["sku"] is not JsonValue skuValue || !skuValue.TryGetValue(out string? text) || string.IsNullOrEmpty(text))
        {
            return ("sku", "sku is required.");
        }
        sku = text;
        if (obj["quantity"] is not JsonObject quantity)
        {
            return ("quantity", "quantity is required.");
        }
        if (quantity["unit"] is not JsonValue unit || !unit.TryGetValue(out string? unitText) || unitText != "EACH")
        {
            return ("quantity.unit", "quantity.unit must be EACH.");
        }
        if (quantity["amount"] is not JsonValue value || value.GetValueKind() != JsonValueKind.Number
            || !value.TryGetValue(out double number) || number < 0 || number != Math.Floor(number) || number > int.MaxValue)
        {
            return ("quantity.amount", "quantity.amount must be a whole number of at least 0.");
        }
        amount = (long)number;
        return null;
    }

    private bool Apply(string sku, long amount, string? shipNode)
    {
        lock (_applyGate)
        {
            if (!_quantities.ContainsKey(sku) || Faults.IsBroken(sku))
            {
                return false;
            }
            _quantities[sku] = amount;
            _shipNodes[sku] = shipNode;
            Interlocked.Increment(ref _applied);
            return true;
        }
    }

    // ---- POST /v3/feeds ----------------------------------------------------------------------------

    private async Task SubmitFeedAsync(HttpContext context)
    {
        if (!await AuthorizedAsync(context).ConfigureAwait(false) || !await FaultAsync(context).ConfigureAwait(false)
            || !await AdmitAsync(context, _feedLimit).ConfigureAwait(false))
        {
            return;
        }
        if (context.Request.Query["feedType"].ToString() != "inventory")
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_PARAM.GMP_GATEWAY_API", "feedType", "This emulator implements feedType=inventory only.", "REQUEST").ConfigureAwait(false);
            return;
        }
        var shipNode = context.Request.Query["shipNode"].ToString() is { Length: > 0 } node ? node : null;
        if (shipNode is not null && _options.ShipNodes is { } nodes && !nodes.Contains(shipNode))
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_PARAM.GMP_GATEWAY_API", "shipNode", $"Ship node {shipNode} does not belong to the seller.", "DATA").ConfigureAwait(false);
            return;
        }
        if (!context.Request.HasFormContentType)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_CONTENT.GMP_GATEWAY_API", "file", "The feed must be uploaded as multipart/form-data with a file part.", "REQUEST").ConfigureAwait(false);
            return;
        }
        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        var file = form.Files.GetFile("file");
        if (file is null)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_CONTENT.GMP_GATEWAY_API", "file", "The file part is missing.", "REQUEST").ConfigureAwait(false);
            return;
        }
        if (file.Length > _options.FeedFileBytesMax)
        {
            await ErrorAsync(context, 413, "errors", "PAYLOAD_TOO_LARGE.GMP_GATEWAY_API", "file", "The feed file exceeds the size limit.", "REQUEST").ConfigureAwait(false);
            return;
        }
        JsonNode? document = null;
        var stream = file.OpenReadStream();
        await using (stream.ConfigureAwait(false))
        {
            try
            {
                document = await JsonNode.ParseAsync(stream, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            }
            catch (JsonException)
            {
                // Walmart takes the file and fails the feed as a whole while processing it, as below.
            }
        }

        var feedId = $"{Guid.NewGuid():N}@AQMBAQA".ToUpperInvariant();
        var feed = new Feed(feedId, shipNode, document);
        _feeds[feedId] = feed;
        Interlocked.Increment(ref _feedsSubmitted);
        _ = ProcessLaterAsync(feed);
        await JsonAsync(context, 200, new JsonObject { ["feedId"] = feedId }).ConfigureAwait(false);
    }

    private async Task ProcessLaterAsync(Feed feed)
    {
        try
        {
            await Task.Delay(_options.FeedProcessingDelay / 2, _time, _stopping.Token).ConfigureAwait(false);
            feed.Status = "INPROGRESS";
            await Task.Delay(_options.FeedProcessingDelay / 2, _time, _stopping.Token).ConfigureAwait(false);
            Process(feed);
        }
        catch (OperationCanceledException)
        {
            // The emulator stopped before the feed finished.
        }
    }

    private void Process(Feed feed)
    {
        var root = feed.Document as JsonObject;
        var version = (root?["InventoryHeader"] as JsonObject)?["version"] is JsonValue v && v.TryGetValue(out string? text) ? text : null;
        if (root?["Inventory"] is not JsonArray items || version != "1.4")
        {
            feed.Error = new JsonObject
            {
                ["type"] = "DATA_ERROR",
                ["code"] = "ERR_PDI_0001",
                ["field"] = "InventoryHeader",
                ["description"] = "Malformed data in the feed file: expected {\"InventoryHeader\":{\"version\":\"1.4\"},\"Inventory\":[...]}.",
            };
            feed.Status = "ERROR";
            return;
        }
        var index = 0;
        foreach (var item in items)
        {
            var problem = ItemProblem(item, out var sku, out var amount);
            var result = new JsonObject
            {
                ["martId"] = 0,
                ["sku"] = sku,
                ["index"] = index++,
                ["ingestionStatus"] = "SUCCESS",
                ["ingestionErrors"] = new JsonObject { ["ingestionError"] = null },
            };
            if (problem is { } p)
            {
                SetItemError(result, "DATA_ERROR", "INVALID_REQUEST_CONTENT.GMP_INVENTORY_API", p.Field, p.Message);
            }
            else if (EmulatorSupport.TakeOne(ref _systemErrorItemsNext))
            {
                SetItemError(result, "SYSTEM_ERROR", "SYSTEM_ERROR.GMP_INVENTORY_API", "sku", "Downstream system failure; retry later.");
            }
            else if (!Apply(sku, amount, feed.ShipNode))
            {
                SetItemError(result, "DATA_ERROR", "CONTENT_NOT_FOUND.GMP_INVENTORY_API", "sku", "Item not found");
            }
            feed.Items.Add(result);
        }
        feed.Status = "PROCESSED";
    }

    private static void SetItemError(JsonObject result, string type, string code, string field, string description)
    {
        result["ingestionStatus"] = type;
        result["ingestionErrors"] = new JsonObject
        {
            ["ingestionError"] = new JsonArray(new JsonObject
            {
                ["type"] = type,
                ["code"] = code,
                ["field"] = field,
                ["description"] = description,
            }),
        };
    }

    // ---- GET /v3/feeds/{feedId} -------------------------------------------------------------------

    private async Task FeedStatusAsync(HttpContext context)
    {
        if (!await AuthorizedAsync(context).ConfigureAwait(false) || !await FaultAsync(context).ConfigureAwait(false)
            || !await AdmitAsync(context, _statusLimit).ConfigureAwait(false))
        {
            return;
        }
        var feedId = context.Request.RouteValues["feedId"]?.ToString() ?? "";
        if (!_feeds.TryGetValue(feedId, out var feed))
        {
            await ErrorAsync(context, 404, "errors", "CONTENT_NOT_FOUND.GMP_FEED_API", "feedId", "Feed not found", "APPLICATION").ConfigureAwait(false);
            return;
        }
        var query = context.Request.Query;
        var details = string.Equals(query["includeDetails"], "true", StringComparison.OrdinalIgnoreCase);
        if (!int.TryParse(query["offset"].ToString() is { Length: > 0 } o ? o : "0", NumberStyles.None, CultureInfo.InvariantCulture, out var offset)
            || !int.TryParse(query["limit"].ToString() is { Length: > 0 } l ? l : "50", NumberStyles.None, CultureInfo.InvariantCulture, out var limit)
            || limit is < 1 or > 1000)
        {
            await ErrorAsync(context, 400, "errors", "INVALID_REQUEST_PARAM.GMP_FEED_API", "limit", "offset must be 0 or more and limit from 1 to 1000.", "REQUEST").ConfigureAwait(false);
            return;
        }

        JsonObject answer;
        lock (feed)
        {
            var done = feed.Status == "PROCESSED";
            var succeeded = feed.Items.Count(i => (string?)i!["ingestionStatus"] == "SUCCESS");
            var page = new JsonArray();
            if (details && done)
            {
                foreach (var item in feed.Items.Skip(offset).Take(limit))
                {
                    page.Add(item!.DeepClone());
                }
            }
            answer = new JsonObject
            {
                ["feedId"] = feed.FeedId,
                ["feedStatus"] = feed.Status,
                ["shipNode"] = feed.ShipNode,
                ["ingestionErrors"] = new JsonObject { ["ingestionError"] = feed.Error is null ? null : new JsonArray(feed.Error.DeepClone()) },
                ["itemsReceived"] = ItemsReceived(feed),
                ["itemsSucceeded"] = succeeded,
                ["itemsFailed"] = done ? feed.Items.Count - succeeded : 0,
                ["itemsProcessing"] = done || feed.Status == "ERROR" ? 0 : ItemsReceived(feed),
                ["offset"] = offset,
                ["limit"] = limit,
                ["itemDetails"] = new JsonObject { ["itemIngestionStatus"] = page },
            };
        }
        await JsonAsync(context, 200, answer).ConfigureAwait(false);
    }

    private static int ItemsReceived(Feed feed) => (feed.Document as JsonObject)?["Inventory"] is JsonArray items ? items.Count : 0;

    // ---- limits, faults and answers ----------------------------------------------------------------

    /// <summary>Takes a token from the API's window, or answers 429 with Walmart's headers; every answer carries the rate headers.</summary>
    private async Task<bool> AdmitAsync(HttpContext context, RateWindow window)
    {
        var admitted = window.TryTake(out var remaining, out var nextToken);
        context.Response.Headers["x-current-token-count"] = remaining.ToString(CultureInfo.InvariantCulture);
        // Rounded up to the next millisecond: a client that waits until this instant must find the token there.
        var replenishMs = (nextToken.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond;
        context.Response.Headers["x-next-replenish-time"] = replenishMs.ToString(CultureInfo.InvariantCulture);
        if (admitted)
        {
            return true;
        }
        Interlocked.Increment(ref _throttled);
        var wait = Math.Max(1, (int)Math.Ceiling((nextToken - _time.GetUtcNow()).TotalSeconds));
        context.Response.Headers.RetryAfter = wait.ToString(CultureInfo.InvariantCulture);
        await ErrorAsync(context, 429, "errors", "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API", "REQUEST_THRESHOLD_VIOLATED",
            "Too many requests", "DATA", "Request threshold violated; retry after the next replenish time.").ConfigureAwait(false);
        return false;
    }

    /// <summary>Injects the next pending fault: a 503 with Walmart's system error, or a hang until the client gives up.</summary>
    private async Task<bool> FaultAsync(HttpContext context)
    {
        if (Faults.TakeTimeout())
        {
            await EmulatorSupport.HangAsync(context.RequestAborted, _stopping.Token).ConfigureAwait(false);
            return false;
        }
        if (Faults.TakeTransientError())
        {
            await ErrorAsync(context, 503, "errors", "SYSTEM_ERROR.GMP_GATEWAY_API", "SYSTEM_ERROR", "Service unavailable", "SYSTEM").ConfigureAwait(false);
            return false;
        }
        return true;
    }

    /// <summary>Writes Walmart's error shape: <c>{"errors":{"error":[...]}}</c> for Marketplace APIs, <c>{"error":[...]}</c> for the Token API.</summary>
    private static Task ErrorAsync(HttpContext context, int status, string wrapper, string code, string field, string description, string category, string? info = null)
    {
        var error = new JsonObject
        {
            ["code"] = code,
            ["field"] = field,
            ["description"] = description,
            ["info"] = info ?? description,
            ["severity"] = "ERROR",
            ["category"] = category,
            ["causes"] = new JsonArray(),
            ["errorIdentifiers"] = new JsonObject(),
        };
        var list = new JsonArray(error);
        var body = wrapper == "error"
            ? new JsonObject { ["error"] = list }
            : new JsonObject { ["errors"] = new JsonObject { ["error"] = list } };
        return JsonAsync(context, status, body);
    }

    private static async Task JsonAsync(HttpContext context, int status, JsonObject body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted).ConfigureAwait(false);
    }

    private static bool FixedTimeEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    private sealed class Feed(string feedId, string? shipNode, JsonNode? document)
    {
        public string FeedId { get; } = feedId;

        public string? ShipNode { get; } = shipNode;

        public JsonNode? Document { get; } = document;

        public volatile string Status = "RECEIVED";

        public JsonObject? Error { get; set; }

        public List<JsonNode?> Items { get; } = [];
    }

    /// <summary>
    /// Walmart's per-API allotment, as its docs describe it: a bucket of <c>calls</c> tokens that comes back
    /// gradually over the window (one token every window/calls). Server side only; connectors use <see cref="TokenBucket"/>.
    /// </summary>
    private sealed class RateWindow(int calls, TimeSpan window, TimeProvider time)
    {
        private readonly Lock _gate = new();
        private readonly double _perSecond = calls / window.TotalSeconds;
        private double _tokens = calls;
        private long _last = time.GetTimestamp();

        public bool TryTake(out long remaining, out DateTimeOffset nextToken)
        {
            lock (_gate)
            {
                Refill();
                var admitted = _tokens >= 1;
                if (admitted)
                {
                    _tokens -= 1;
                }
                remaining = (long)Math.Floor(_tokens);
                var missing = 1 - (_tokens - Math.Floor(_tokens));
                nextToken = time.GetUtcNow() + TimeSpan.FromSeconds(missing / _perSecond);
                return admitted;
            }
        }

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
            var now = time.GetTimestamp();
            _tokens = Math.Min(calls, _tokens + (time.GetElapsedTime(_last, now).TotalSeconds * _perSecond));
            _last = now;
        }
    }
}
