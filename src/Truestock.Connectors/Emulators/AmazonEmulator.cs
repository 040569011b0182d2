using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>A usage plan of one emulated SP-API operation: a token bucket of <paramref name="Burst"/> requests refilled at <paramref name="RatePerSecond"/>.</summary>
/// <param name="RatePerSecond">Requests per second.</param>
/// <param name="Burst">The bucket's size.</param>
public sealed record AmazonRateLimit(double RatePerSecond, int Burst);

/// <summary>
/// Options of the <see cref="AmazonEmulator"/>. Defaults are Amazon's documented values
/// (docs/connectors/amazon.md); tests shrink the limits and delays so they run in seconds.
/// </summary>
public sealed class AmazonEmulatorOptions
{
    /// <summary>The LWA client id the token endpoint accepts.</summary>
    public string ClientId { get; init; } = "amzn1.application-oa2-client.emulator";

    /// <summary>The LWA client secret the token endpoint accepts.</summary>
    public string ClientSecret { get; init; } = "amzn1.oa2-cs.v1.emulator-secret";

    /// <summary>The LWA refresh token the token endpoint accepts.</summary>
    public string RefreshToken { get; init; } = "Atzr|emulator-refresh-token";

    /// <summary>The selling partner the emulated account belongs to.</summary>
    public string SellerId { get; init; } = "A2EMULATORSELLER";

    /// <summary>The marketplaces the account sells in (default: Amazon.com, ATVPDKIKX0DER).</summary>
    public IReadOnlyList<string> MarketplaceIds { get; init; } = ["ATVPDKIKX0DER"];

    /// <summary>How long an issued access token is valid (LWA: one hour).</summary>
    public TimeSpan AccessTokenLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>patchListingsItem: 5 requests per second, burst 5 (Listings Items API rate limits page).</summary>
    public AmazonRateLimit PatchListingsItem { get; init; } = new(5, 5);

    /// <summary>getListingsItem: 5 requests per second, burst 5.</summary>
    public AmazonRateLimit GetListingsItem { get; init; } = new(5, 5);

    /// <summary>createFeedDocument: 0.5 requests per second, burst 15.</summary>
    public AmazonRateLimit CreateFeedDocument { get; init; } = new(0.5, 15);

    /// <summary>createFeed: 0.0083 requests per second, burst 15.</summary>
    public AmazonRateLimit CreateFeed { get; init; } = new(0.0083, 15);

    /// <summary>JSON_LISTINGS_FEED submissions: five per five minutes (on top of the createFeed plan).</summary>
    public AmazonRateLimit JsonListingsFeedSubmissions { get; init; } = new(5.0 / 300, 5);

    /// <summary>getFeed: 2 requests per second, burst 15.</summary>
    public AmazonRateLimit GetFeed { get; init; } = new(2, 15);

    /// <summary>getFeedDocument: 0.0222 requests per second, burst 10.</summary>
    public AmazonRateLimit GetFeedDocument { get; init; } = new(0.0222, 10);

    /// <summary>cancelFeed: 2 requests per second, burst 15.</summary>
    public AmazonRateLimit CancelFeed { get; init; } = new(2, 15);

    /// <summary>
    /// How long a feed takes: IN_QUEUE for the first half, IN_PROGRESS for the second, then DONE.
    /// Real feeds take minutes; there is no documented figure.
    /// </summary>
    public TimeSpan FeedProcessingDelay { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Serve processing reports GZIP-compressed (getFeedDocument then says compressionAlgorithm GZIP).</summary>
    public bool CompressReports { get; init; }

    /// <summary>
    /// An emulator extension: send this Retry-After with 429 answers. Amazon documents no
    /// Retry-After for SP-API throttles, so the default is none.
    /// </summary>
    public TimeSpan? RetryAfterOnThrottle { get; init; }

    /// <summary>The most messages one feed may hold (raised from 10,000 to 25,000 in May 2025).</summary>
    public int FeedMessagesMax { get; init; } = 25_000;

    /// <summary>The clock for token expiry, rate limits and feed processing.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// An in-process emulator of the parts of Amazon's Selling Partner API the Amazon connector uses:
/// the Login with Amazon token endpoint, Listings Items API patchListingsItem/getListingsItem, and
/// the Feeds API 2021-06-30 (createFeedDocument, the presigned upload/download URLs, createFeed,
/// getFeed, cancelFeed, getFeedDocument) with asynchronous JSON_LISTINGS_FEED processing and
/// processing reports. It enforces per-operation usage plans with Amazon's 429 QuotaExceeded
/// answers and x-amzn-RateLimit-Limit headers, checks access tokens, validates payloads with
/// Amazon's error bodies, and injects faults. It is an emulator, not Amazon: where Amazon's
/// behaviour is undocumented it makes a documented choice (see docs/connectors/amazon.md).
/// </summary>
public sealed class AmazonEmulator : IAsyncDisposable
{
    /// <summary>The most bytes of an API request body read.</summary>
    private const int RequestBytesMax = 1024 * 1024;

    /// <summary>The most bytes of an uploaded feed document.</summary>
    private const int DocumentBytesMax = 64 * 1024 * 1024;

    private const string FeedsPath = "/feeds/2021-06-30";
    private const string DocumentsStorePath = "emulator-s3/";

    private readonly AmazonEmulatorOptions _options;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Listing> _listings = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _accessTokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StoredDocument> _documents = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EmulatedFeed> _feeds = new(StringComparer.Ordinal);
    private readonly Limiter _patchLimit, _getListingLimit, _createDocumentLimit, _createFeedLimit, _listingsFeedLimit, _getFeedLimit, _getDocumentLimit, _cancelLimit;
    private WebApplication? _app;
    private long _requests;
    private long _throttled;
    private long _updatesApplied;
    private long _patchesApplied;
    private long _feedsCreated;
    private long _feedsCancelled;
    private long _tokensIssued;
    private long _nextFeedId = 50_000_000_001;
    private int _fatalFeeds;

    private AmazonEmulator(AmazonEmulatorOptions options)
    {
        _options = options;
        var time = options.Time;
        _patchLimit = new Limiter(options.PatchListingsItem, time);
        _getListingLimit = new Limiter(options.GetListingsItem, time);
        _createDocumentLimit = new Limiter(options.CreateFeedDocument, time);
        _createFeedLimit = new Limiter(options.CreateFeed, time);
        _listingsFeedLimit = new Limiter(options.JsonListingsFeedSubmissions, time);
        _getFeedLimit = new Limiter(options.GetFeed, time);
        _getDocumentLimit = new Limiter(options.GetFeedDocument, time);
        _cancelLimit = new Limiter(options.CancelFeed, time);
    }

    /// <summary>Starts the emulator on a free 127.0.0.1 port.</summary>
    public static async Task<AmazonEmulator> StartAsync(AmazonEmulatorOptions? options = null)
    {
        var emulator = new AmazonEmulator(options ?? new AmazonEmulatorOptions());
        var (app, address) = await EmulatorHost.StartAsync(emulator.Map).ConfigureAwait(false);
        emulator._app = app;
        emulator.BaseAddress = address;
        return emulator;
    }

    /// <summary>The SP-API base address (the connector's <c>baseUrl</c>).</summary>
    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    /// <summary>The emulated LWA token endpoint (the connector's <c>tokenUrl</c>).</summary>
    public Uri TokenUrl => new(BaseAddress, "auth/o2/token");

    /// <summary>The options the emulator runs with.</summary>
    public AmazonEmulatorOptions Options => _options;

    /// <summary>Faults injected into SP-API requests (not into the token endpoint or document URLs).</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>Requests received (all endpoints).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests answered 429 QuotaExceeded.</summary>
    public long ThrottledResponses => Interlocked.Read(ref _throttled);

    /// <summary>Quantity writes applied (per-item patches plus accepted feed messages).</summary>
    public long UpdatesApplied => Interlocked.Read(ref _updatesApplied);

    /// <summary>Quantity writes applied through patchListingsItem.</summary>
    public long PatchesApplied => Interlocked.Read(ref _patchesApplied);

    /// <summary>Feeds created with createFeed.</summary>
    public long FeedsCreated => Interlocked.Read(ref _feedsCreated);

    /// <summary>Feeds cancelled with cancelFeed.</summary>
    public long FeedsCancelled => Interlocked.Read(ref _feedsCancelled);

    /// <summary>Access tokens issued by the token endpoint.</summary>
    public long TokensIssued => Interlocked.Read(ref _tokensIssued);

    /// <summary>The quantity Amazon shows for each listing that has one.</summary>
    public IReadOnlyDictionary<string, long> Quantities
    {
        get
        {
            lock (_gate)
            {
                AdvanceFeeds();
                return _listings.Where(l => l.Value.Quantity is not null).ToDictionary(l => l.Key, l => l.Value.Quantity!.Value, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>The quantity Amazon shows for a SKU; null when the SKU is not listed or has no quantity yet.</summary>
    public long? QuantityOf(string sku)
    {
        lock (_gate)
        {
            AdvanceFeeds();
            return _listings.TryGetValue(sku, out var listing) ? listing.Quantity : null;
        }
    }

    /// <summary>Creates (or replaces) a listing for <paramref name="sku"/>; SKUs without one answer NOT_FOUND.</summary>
    public void AddListing(string sku, long? quantity = null, string productType = "PRODUCT")
    {
        ArgumentException.ThrowIfNullOrEmpty(sku);
        lock (_gate)
        {
            _listings[sku] = new Listing(productType) { Quantity = quantity };
        }
    }

    /// <summary>Makes every access token issued so far invalid, as if it had expired.</summary>
    public void ExpireAccessTokens()
    {
        lock (_gate)
        {
            _accessTokens.Clear();
        }
    }

    /// <summary>The next <paramref name="count"/> feeds created end FATAL without applying anything.</summary>
    public void FailNextFeeds(int count) => Interlocked.Exchange(ref _fatalFeeds, count);

    /// <summary>The processing status of a feed (null when unknown).</summary>
    public string? FeedStatus(string feedId)
    {
        lock (_gate)
        {
            AdvanceFeeds();
            return _feeds.TryGetValue(feedId, out var feed) ? feed.Status : null;
        }
    }

    /// <summary>Stops the server.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Map(WebApplication app)
    {
        app.MapPost("/auth/o2/token", ctx => Token(ctx));
        app.MapMethods("/listings/2021-08-01/items/{sellerId}/{sku}", ["PATCH"], ctx => SpApi(ctx, _patchLimit, PatchListingsItem));
        app.MapGet("/listings/2021-08-01/items/{sellerId}/{sku}", ctx => SpApi(ctx, _getListingLimit, GetListingsItem));
        app.MapPost(FeedsPath + "/documents", ctx => SpApi(ctx, _createDocumentLimit, CreateFeedDocument));
        app.MapGet(FeedsPath + "/documents/{feedDocumentId}", ctx => SpApi(ctx, _getDocumentLimit, GetFeedDocument));
        app.MapPost(FeedsPath + "/feeds", ctx => SpApi(ctx, _createFeedLimit, CreateFeed));
        app.MapGet(FeedsPath + "/feeds/{feedId}", ctx => SpApi(ctx, _getFeedLimit, GetFeed));
        app.MapDelete(FeedsPath + "/feeds/{feedId}", ctx => SpApi(ctx, _cancelLimit, CancelFeed));
        app.MapPut("/" + DocumentsStorePath + "{documentId}", ctx => UploadDocument(ctx));
        app.MapGet("/" + DocumentsStorePath + "{documentId}", ctx => DownloadDocument(ctx));
    }

    // ------------------------------------------------------------------ Login with Amazon

    /// <summary>POST /auth/o2/token, grant_type=refresh_token (form-encoded), like api.amazon.com.</summary>
    private async Task Token(HttpContext ctx)
    {
        Interlocked.Increment(ref _requests);
        if (!ctx.Request.HasFormContentType)
        {
            await OAuthError(ctx, 400, "invalid_request", "The request is missing a required parameter : grant_type").ConfigureAwait(false);
            return;
        }
        var form = await ctx.Request.ReadFormAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (form["grant_type"] != "refresh_token")
        {
            await OAuthError(ctx, 400, "unsupported_grant_type", "The authorization grant type is not supported by the emulator").ConfigureAwait(false);
            return;
        }
        if (!FixedEquals(form["client_id"].ToString(), _options.ClientId) || !FixedEquals(form["client_secret"].ToString(), _options.ClientSecret))
        {
            await OAuthError(ctx, 401, "invalid_client", "Client authentication failed").ConfigureAwait(false);
            return;
        }
        if (!FixedEquals(form["refresh_token"].ToString(), _options.RefreshToken))
        {
            await OAuthError(ctx, 400, "invalid_grant", "The request has an invalid grant parameter : refresh_token").ConfigureAwait(false);
            return;
        }
        var token = "Atza|" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)).Replace('+', '-').Replace('/', '_');
        lock (_gate)
        {
            _accessTokens[token] = _options.Time.GetUtcNow() + _options.AccessTokenLifetime;
        }
        Interlocked.Increment(ref _tokensIssued);
        ctx.Response.Headers.CacheControl = "no-store";
        await WriteJson(ctx, 200, new JsonObject
        {
            ["access_token"] = token,
            ["token_type"] = "bearer",
            ["expires_in"] = (int)Math.Max(1, _options.AccessTokenLifetime.TotalSeconds),
            ["refresh_token"] = _options.RefreshToken,
        }).ConfigureAwait(false);
    }

    private static Task OAuthError(HttpContext ctx, int status, string error, string description) =>
        WriteJson(ctx, status, new JsonObject { ["error"] = error, ["error_description"] = description });

    private static bool FixedEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    // ------------------------------------------------------------------ SP-API pipeline

    /// <summary>Every SP-API request: faults, then the access token, then the usage plan, then the operation.</summary>
    private async Task SpApi(HttpContext ctx, Limiter limit, Func<HttpContext, Task> operation)
    {
        Interlocked.Increment(ref _requests);
        ctx.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString();
        if (Faults.TakeTimeout())
        {
            // Only the client giving up ends this hang, which is the point of the fault.
            await EmulatorSupport.HangAsync(ctx.RequestAborted, CancellationToken.None).ConfigureAwait(false);
            return;
        }
        if (Faults.TakeTransientError())
        {
            await Errors(ctx, 503, "ServiceUnavailable", "Temporary overloading or maintenance of the server.").ConfigureAwait(false);
            return;
        }
        var token = ctx.Request.Headers["x-amz-access-token"].ToString();
        DateTimeOffset expiry;
        bool known;
        lock (_gate)
        {
            known = _accessTokens.TryGetValue(token, out expiry);
        }
        if (!known || expiry <= _options.Time.GetUtcNow())
        {
            await Errors(ctx, 403, "Unauthorized", "Access to requested resource is denied.",
                known ? "The access token you provided has expired." : "The access token you provided is revoked, malformed or invalid.").ConfigureAwait(false);
            return;
        }
        if (!limit.TryTake())
        {
            Interlocked.Increment(ref _throttled);
            if (_options.RetryAfterOnThrottle is { } retryAfter)
            {
                ctx.Response.Headers.RetryAfter = Math.Ceiling(retryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
            }
            // Amazon no longer returns x-amzn-RateLimit-Limit with 429 answers.
            await Errors(ctx, 429, "QuotaExceeded", "You exceeded your quota for the requested resource.").ConfigureAwait(false);
            return;
        }
        ctx.Response.Headers["x-amzn-RateLimit-Limit"] = limit.RatePerSecond.ToString("0.0###", CultureInfo.InvariantCulture);
        await operation(ctx).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ Listings Items API

    /// <summary>PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=…</summary>
    private async Task PatchListingsItem(HttpContext ctx)
    {
        var sku = (string)ctx.Request.RouteValues["sku"]!;
        if (!await CheckSellerAndMarketplaces(ctx).ConfigureAwait(false))
        {
            return;
        }
        var body = await ReadJson(ctx).ConfigureAwait(false);
        var request = body as JsonObject;
        var productType = Str(request?["productType"]);
        var issue = ValidatePatches(request?["patches"], out var quantity);
        if (string.IsNullOrEmpty(productType) || issue?.StartsWith('!') == true)
        {
            await InvalidInput(ctx).ConfigureAwait(false);
            return;
        }
        var marketplace = MarketplacesOf(ctx)[0];
        string? notFound = null;
        JsonArray issues = [];
        lock (_gate)
        {
            AdvanceFeeds();
            if (!_listings.TryGetValue(sku, out var listing) || Faults.IsBroken(sku))
            {
                notFound = $"SKU '{sku}' not found in marketplace {marketplace}";
            }
            else if (issue is not null)
            {
                issues.Add(Issue("INVALID_ATTRIBUTE_VALUE", issue, ["fulfillment_availability"]));
            }
            else if (productType != "PRODUCT" && productType != listing.ProductType)
            {
                issues.Add(Issue("INVALID_PRODUCT_TYPE", $"The product type '{productType}' does not match the listing's product type '{listing.ProductType}'.", []));
            }
            else if (quantity is { } value)
            {
                listing.Quantity = value;
                Interlocked.Increment(ref _updatesApplied);
                Interlocked.Increment(ref _patchesApplied);
            }
        }
        if (notFound is not null)
        {
            await Errors(ctx, 404, "NOT_FOUND", notFound).ConfigureAwait(false);
            return;
        }
        await WriteJson(ctx, 200, new JsonObject
        {
            ["sku"] = sku,
            ["status"] = issues.Count == 0 ? "ACCEPTED" : "INVALID",
            ["submissionId"] = Guid.NewGuid().ToString("N"),
            ["issues"] = issues,
        }).ConfigureAwait(false);
    }

    /// <summary>GET /listings/2021-08-01/items/{sellerId}/{sku}: the fulfillmentAvailability data set.</summary>
    private async Task GetListingsItem(HttpContext ctx)
    {
        var sku = (string)ctx.Request.RouteValues["sku"]!;
        if (!await CheckSellerAndMarketplaces(ctx).ConfigureAwait(false))
        {
            return;
        }
        long? quantity;
        bool found;
        lock (_gate)
        {
            AdvanceFeeds();
            found = _listings.TryGetValue(sku, out var listing) && !Faults.IsBroken(sku);
            quantity = listing?.Quantity;
        }
        if (!found)
        {
            await Errors(ctx, 404, "NOT_FOUND", $"SKU '{sku}' not found in marketplace {MarketplacesOf(ctx)[0]}").ConfigureAwait(false);
            return;
        }
        var availability = new JsonObject { ["fulfillmentChannelCode"] = "DEFAULT" };
        if (quantity is { } value)
        {
            availability["quantity"] = value;
        }
        await WriteJson(ctx, 200, new JsonObject { ["sku"] = sku, ["fulfillmentAvailability"] = new JsonArray(availability) }).ConfigureAwait(false);
    }

    private async Task<bool> CheckSellerAndMarketplaces(HttpContext ctx)
    {
        if ((string?)ctx.Request.RouteValues["sellerId"] != _options.SellerId)
        {
            // The access token does not authorize this selling partner.
            await Errors(ctx, 403, "Unauthorized", "Access to requested resource is denied.").ConfigureAwait(false);
            return false;
        }
        var marketplaces = MarketplacesOf(ctx);
        if (marketplaces.Length == 0 || marketplaces.Any(m => !_options.MarketplaceIds.Contains(m, StringComparer.Ordinal)))
        {
            await Errors(ctx, 400, "InvalidInput", "Request has missing or invalid parameters and cannot be parsed.",
                marketplaces.Length == 0 ? "Missing required parameter: marketplaceIds" : "Invalid marketplaceIds for this selling partner").ConfigureAwait(false);
            return false;
        }
        return true;
    }

    private static string[] MarketplacesOf(HttpContext ctx) =>
        ctx.Request.Query["marketplaceIds"].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>
    /// Validates a JSON Patch array as the Listings Items API takes it. Returns null when valid
    /// (with the new quantity when it replaces fulfillment_availability); a message starting with
    /// '!' when the shape cannot be parsed at all (400 InvalidInput); otherwise a validation issue.
    /// </summary>
    private static string? ValidatePatches(JsonNode? patches, out long? quantity)
    {
        quantity = null;
        if (patches is not JsonArray list || list.Count == 0)
        {
            return "!patches must be a non-empty array";
        }
        foreach (var patch in list)
        {
            if (patch is not JsonObject operation
                || operation["op"] is not JsonValue opValue || !opValue.TryGetValue<string>(out var op)
                || operation["path"] is not JsonValue pathValue || !pathValue.TryGetValue<string>(out var path))
            {
                return "!each patch needs string op and path";
            }
            if (op is not ("add" or "replace" or "delete" or "merge") || !path.StartsWith("/attributes/", StringComparison.Ordinal))
            {
                return "!unsupported op or path";
            }
            if (op != "delete" && operation["value"] is not JsonArray)
            {
                return "!value must be an array";
            }
            if (path != "/attributes/fulfillment_availability" || op == "delete")
            {
                continue;
            }
            foreach (var entry in (JsonArray)operation["value"]!)
            {
                if (entry is not JsonObject availability
                    || availability["fulfillment_channel_code"] is not JsonValue code || !code.TryGetValue<string>(out var channel) || channel.Length == 0)
                {
                    return "'fulfillment_availability' requires 'fulfillment_channel_code'.";
                }
                if (availability["quantity"] is not JsonValue quantityValue || !quantityValue.TryGetValue<long>(out var number))
                {
                    if (availability["quantity"] is JsonValue decimalValue && decimalValue.TryGetValue<double>(out _))
                    {
                        return "The value for 'quantity' in 'fulfillment_availability' must be an integer.";
                    }
                    return "'quantity' is required in 'fulfillment_availability' for a seller-fulfilled channel.";
                }
                if (number < 0)
                {
                    return "The value for 'quantity' in 'fulfillment_availability' must be greater than or equal to 0.";
                }
                quantity = number;
            }
        }
        return null;
    }

    private static JsonObject Issue(string code, string message, string[] attributes) => new()
    {
        ["code"] = code,
        ["message"] = message,
        ["severity"] = "ERROR",
        ["attributeNames"] = new JsonArray([.. attributes.Select(a => (JsonNode)a)]),
    };

    // ------------------------------------------------------------------ Feeds API

    /// <summary>POST /feeds/2021-06-30/documents {contentType} → 201 {feedDocumentId, url}.</summary>
    private async Task CreateFeedDocument(HttpContext ctx)
    {
        var body = await ReadJson(ctx).ConfigureAwait(false);
        if (body is not JsonObject request || request["contentType"] is not JsonValue value || !value.TryGetValue<string>(out var contentType) || contentType.Length == 0)
        {
            await InvalidInput(ctx).ConfigureAwait(false);
            return;
        }
        var id = "amzn1.tortuga.4.na." + Guid.NewGuid().ToString("N");
        lock (_gate)
        {
            _documents[id] = new StoredDocument(contentType, IsResult: false);
        }
        await WriteJson(ctx, 201, new JsonObject { ["feedDocumentId"] = id, ["url"] = new Uri(BaseAddress, DocumentsStorePath + id).AbsoluteUri }).ConfigureAwait(false);
    }

    /// <summary>PUT to the presigned upload URL; the Content-Type must match the one given to createFeedDocument (it is part of the signature).</summary>
    private async Task UploadDocument(HttpContext ctx)
    {
        Interlocked.Increment(ref _requests);
        var id = (string)ctx.Request.RouteValues["documentId"]!;
        StoredDocument? document;
        lock (_gate)
        {
            document = _documents.GetValueOrDefault(id);
        }
        if (document is null || document.IsResult)
        {
            await S3Error(ctx, 404, "NoSuchKey", "The specified key does not exist.").ConfigureAwait(false);
            return;
        }
        if (!string.Equals(ctx.Request.ContentType?.Replace(" ", "", StringComparison.Ordinal), document.ContentType.Replace(" ", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase))
        {
            await S3Error(ctx, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.").ConfigureAwait(false);
            return;
        }
        var bytes = await ReadBody(ctx, DocumentBytesMax).ConfigureAwait(false);
        if (bytes is null)
        {
            await S3Error(ctx, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.").ConfigureAwait(false);
            return;
        }
        lock (_gate)
        {
            document.Content = bytes;
        }
        ctx.Response.StatusCode = 200;
    }

    /// <summary>GET from a presigned download URL (processing reports).</summary>
    private async Task DownloadDocument(HttpContext ctx)
    {
        Interlocked.Increment(ref _requests);
        var id = (string)ctx.Request.RouteValues["documentId"]!;
        byte[]? content;
        lock (_gate)
        {
            content = _documents.GetValueOrDefault(id)?.Content;
        }
        if (content is null)
        {
            await S3Error(ctx, 404, "NoSuchKey", "The specified key does not exist.").ConfigureAwait(false);
            return;
        }
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = _options.CompressReports ? "application/octet-stream" : "application/json";
        await ctx.Response.Body.WriteAsync(content, ctx.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>POST /feeds/2021-06-30/feeds {feedType, marketplaceIds, inputFeedDocumentId} → 202 {feedId}.</summary>
    private async Task CreateFeed(HttpContext ctx)
    {
        var body = await ReadJson(ctx).ConfigureAwait(false);
        if (body is not JsonObject request
            || request["feedType"] is not JsonValue typeValue || !typeValue.TryGetValue<string>(out var feedType)
            || request["inputFeedDocumentId"] is not JsonValue docValue || !docValue.TryGetValue<string>(out var documentId)
            || request["marketplaceIds"] is not JsonArray marketplaces || marketplaces.Count is 0 or > 25)
        {
            await InvalidInput(ctx).ConfigureAwait(false);
            return;
        }
        if (feedType != "JSON_LISTINGS_FEED")
        {
            await Errors(ctx, 400, "InvalidInput", "Invalid input", $"feedType '{feedType}' is not implemented by the emulator; it implements JSON_LISTINGS_FEED.").ConfigureAwait(false);
            return;
        }
        var marketplaceIds = marketplaces.Select(m => Str(m) ?? "").ToList();
        if (marketplaceIds.Any(m => !_options.MarketplaceIds.Contains(m, StringComparer.Ordinal)))
        {
            await Errors(ctx, 400, "InvalidInput", "Invalid input", "Invalid marketplaceIds for this selling partner").ConfigureAwait(false);
            return;
        }
        StoredDocument? document;
        lock (_gate)
        {
            document = _documents.GetValueOrDefault(documentId);
        }
        if (document is null || document.IsResult || document.Content is null)
        {
            await Errors(ctx, 400, "InvalidInput", "Invalid input", $"The feed document {documentId} does not exist or has no content.").ConfigureAwait(false);
            return;
        }
        // JSON_LISTINGS_FEED has its own, stricter plan on top of createFeed's.
        if (!_listingsFeedLimit.TryTake())
        {
            Interlocked.Increment(ref _throttled);
            await Errors(ctx, 429, "QuotaExceeded", "You exceeded your quota for the requested resource.").ConfigureAwait(false);
            return;
        }
        EmulatedFeed feed;
        lock (_gate)
        {
            AdvanceFeeds();
            var id = (_nextFeedId++).ToString(CultureInfo.InvariantCulture);
            feed = new EmulatedFeed(id, feedType, [.. marketplaceIds], documentId, _options.Time.GetUtcNow(), TakeFatal());
            _feeds[id] = feed;
        }
        Interlocked.Increment(ref _feedsCreated);
        await WriteJson(ctx, 202, new JsonObject { ["feedId"] = feed.Id }).ConfigureAwait(false);
    }

    private bool TakeFatal() => EmulatorSupport.TakeOne(ref _fatalFeeds);

    /// <summary>GET /feeds/2021-06-30/feeds/{feedId} → the Feed.</summary>
    private async Task GetFeed(HttpContext ctx)
    {
        var id = (string)ctx.Request.RouteValues["feedId"]!;
        JsonObject? answer = null;
        lock (_gate)
        {
            AdvanceFeeds();
            if (_feeds.TryGetValue(id, out var feed))
            {
                answer = new JsonObject
                {
                    ["feedId"] = feed.Id,
                    ["feedType"] = feed.Type,
                    ["marketplaceIds"] = new JsonArray([.. feed.MarketplaceIds.Select(m => (JsonNode)m)]),
                    ["createdTime"] = Iso(feed.Created),
                    ["processingStatus"] = feed.Status,
                };
                if (feed.Started is { } started)
                {
                    answer["processingStartTime"] = Iso(started);
                }
                if (feed.Ended is { } ended)
                {
                    answer["processingEndTime"] = Iso(ended);
                }
                if (feed.ResultDocumentId is { } result)
                {
                    answer["resultFeedDocumentId"] = result;
                }
            }
        }
        if (answer is null)
        {
            await Errors(ctx, 404, "NotFound", $"The requested feed {id} was not found.").ConfigureAwait(false);
            return;
        }
        await WriteJson(ctx, 200, answer).ConfigureAwait(false);
    }

    /// <summary>DELETE /feeds/2021-06-30/feeds/{feedId}: only IN_QUEUE feeds can be cancelled.</summary>
    private async Task CancelFeed(HttpContext ctx)
    {
        var id = (string)ctx.Request.RouteValues["feedId"]!;
        string? status;
        lock (_gate)
        {
            AdvanceFeeds();
            status = _feeds.TryGetValue(id, out var feed) ? feed.Status : null;
            if (feed is not null && status == "IN_QUEUE")
            {
                feed.Status = "CANCELLED";
                feed.Ended = _options.Time.GetUtcNow();
                Interlocked.Increment(ref _feedsCancelled);
            }
        }
        if (status is null)
        {
            await Errors(ctx, 404, "NotFound", $"The requested feed {id} was not found.").ConfigureAwait(false);
            return;
        }
        if (status != "IN_QUEUE")
        {
            await Errors(ctx, 400, "InvalidInput", "Invalid input", $"Only feeds with processingStatus IN_QUEUE can be cancelled; feed {id} is {status}.").ConfigureAwait(false);
            return;
        }
        ctx.Response.StatusCode = 200;
    }

    /// <summary>GET /feeds/2021-06-30/documents/{feedDocumentId} → {feedDocumentId, url, compressionAlgorithm?}.</summary>
    private async Task GetFeedDocument(HttpContext ctx)
    {
        var id = (string)ctx.Request.RouteValues["feedDocumentId"]!;
        StoredDocument? document;
        lock (_gate)
        {
            AdvanceFeeds();
            document = _documents.GetValueOrDefault(id);
        }
        if (document is null)
        {
            await Errors(ctx, 404, "NotFound", $"The requested feed document {id} was not found.").ConfigureAwait(false);
            return;
        }
        var answer = new JsonObject { ["feedDocumentId"] = id, ["url"] = new Uri(BaseAddress, DocumentsStorePath + id).AbsoluteUri };
        if (document.Compression is { } compression)
        {
            answer["compressionAlgorithm"] = compression;
        }
        await WriteJson(ctx, 200, answer).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ feed processing

    /// <summary>
    /// Moves feeds along their timeline (IN_QUEUE → IN_PROGRESS → DONE). Called under the lock
    /// before every read and write, so a feed applies before any later request, as at Amazon.
    /// </summary>
    private void AdvanceFeeds()
    {
        var now = _options.Time.GetUtcNow();
        foreach (var feed in _feeds.Values.OrderBy(f => f.Created))
        {
            if (feed.Status is "DONE" or "FATAL" or "CANCELLED")
            {
                continue;
            }
            var elapsed = now - feed.Created;
            if (elapsed >= _options.FeedProcessingDelay)
            {
                feed.Started ??= feed.Created + (_options.FeedProcessingDelay / 2);
                Process(feed, feed.Created + _options.FeedProcessingDelay);
            }
            else if (elapsed >= _options.FeedProcessingDelay / 2 && feed.Status == "IN_QUEUE")
            {
                feed.Status = "IN_PROGRESS";
                feed.Started = now;
            }
        }
    }

    /// <summary>Applies a JSON_LISTINGS_FEED and stores its processing report.</summary>
    private void Process(EmulatedFeed feed, DateTimeOffset endedAt)
    {
        var issues = new JsonArray();
        int processed = 0, accepted = 0, invalid = 0;
        var fatal = feed.Fatal;
        if (fatal)
        {
            issues.Add(FeedIssue(null, null, "FATAL_ERROR", "The emulator was told to abort this feed (FailNextFeeds)."));
        }
        else if (!TryParseFeed(_documents[feed.InputDocumentId].Content!, out var header, out var messages, out var parseError))
        {
            fatal = true;
            issues.Add(FeedIssue(null, null, "INVALID_FEED", parseError!));
        }
        else if (Str(header!["sellerId"]) != _options.SellerId || Str(header["version"]) != "2.0")
        {
            fatal = true;
            issues.Add(FeedIssue(null, null, "INVALID_FEED_HEADER", "The feed header must name this selling partner's sellerId and version \"2.0\"."));
        }
        else
        {
            var seen = new HashSet<long>();
            foreach (var node in messages!)
            {
                processed++;
                var message = node as JsonObject;
                long? messageId = message?["messageId"] is JsonValue idValue && idValue.TryGetValue<long>(out var number) && number >= 1 ? number : null;
                var sku = message?["sku"] is JsonValue skuValue && skuValue.TryGetValue<string>(out var text) && text.Length > 0 ? text : null;
                string? problem = null;
                long? quantity = null;
                if (messageId is null || !seen.Add(messageId.Value) || sku is null)
                {
                    problem = "Each message needs a unique integer messageId (1 or more) and a sku.";
                }
                else if (Str(message!["operationType"]) != "PATCH")
                {
                    problem = "The emulator implements the PATCH operationType only.";
                }
                else if (message["productType"] is not JsonValue typeValue || !typeValue.TryGetValue<string>(out var productType) || productType.Length == 0)
                {
                    problem = "PATCH messages require a productType.";
                }
                else if (ValidatePatches(message["patches"], out quantity) is { } patchProblem)
                {
                    problem = patchProblem.TrimStart('!');
                }
                else if (!_listings.TryGetValue(sku, out var listing) || Faults.IsBroken(sku))
                {
                    issues.Add(FeedIssue(messageId, sku, "NOT_FOUND", $"SKU '{sku}' not found in marketplace {feed.MarketplaceIds[0]}"));
                    invalid++;
                    continue;
                }
                else if (productType != "PRODUCT" && productType != listing.ProductType)
                {
                    problem = $"The product type '{productType}' does not match the listing's product type '{listing.ProductType}'.";
                }
                else if (quantity is { } value)
                {
                    listing.Quantity = value;
                    Interlocked.Increment(ref _updatesApplied);
                }
                if (problem is not null)
                {
                    issues.Add(FeedIssue(messageId, sku, "INVALID_MESSAGE", problem));
                    invalid++;
                }
                else
                {
                    accepted++;
                }
            }
        }

        var report = new JsonObject
        {
            ["header"] = new JsonObject { ["sellerId"] = _options.SellerId, ["version"] = "2.0", ["feedId"] = feed.Id },
            ["issues"] = issues,
            ["summary"] = new JsonObject
            {
                ["errors"] = issues.Count,
                ["warnings"] = 0,
                ["messagesProcessed"] = processed,
                ["messagesAccepted"] = accepted,
                ["messagesInvalid"] = invalid,
            },
        };
        var bytes = Encoding.UTF8.GetBytes(report.ToJsonString());
        var resultId = "amzn1.tortuga.4.na." + Guid.NewGuid().ToString("N");
        _documents[resultId] = new StoredDocument("application/json", IsResult: true)
        {
            Content = _options.CompressReports ? Gzip(bytes) : bytes,
            Compression = _options.CompressReports ? "GZIP" : null,
        };
        feed.ResultDocumentId = resultId;
        feed.Status = fatal ? "FATAL" : "DONE";
        feed.Ended = endedAt;
    }

    private bool TryParseFeed(byte[] content, out JsonObject? header, out JsonArray? messages, out string? error)
    {
        header = null;
        messages = null;
        error = null;
        try
        {
            var root = JsonNode.Parse(content);
            header = root?["header"] as JsonObject;
            messages = root?["messages"] as JsonArray;
            if (header is null || messages is null || messages.Count == 0)
            {
                error = "The feed must be a JSON object with a header and at least one message.";
                return false;
            }
            if (messages.Count > _options.FeedMessagesMax)
            {
                error = $"The feed holds {messages.Count} messages; at most {_options.FeedMessagesMax} are allowed.";
                return false;
            }
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            error = "The feed is not valid JSON: " + ex.Message;
            return false;
        }
    }

    private static JsonObject FeedIssue(long? messageId, string? sku, string code, string message)
    {
        var issue = new JsonObject();
        if (messageId is { } id)
        {
            issue["messageId"] = id;
        }
        if (sku is not null)
        {
            issue["sku"] = sku;
        }
        issue["code"] = code;
        issue["severity"] = "ERROR";
        issue["message"] = message;
        return issue;
    }

    private static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest))
        {
            gzip.Write(bytes);
        }
        return output.ToArray();
    }

    // ------------------------------------------------------------------ wire helpers

    private static string? Str(JsonNode? node) => node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static Task InvalidInput(HttpContext ctx) =>
        Errors(ctx, 400, "InvalidInput", "Request has missing or invalid parameters and cannot be parsed.");

    /// <summary>An SP-API ErrorList: {"errors":[{"code","message","details"}]}.</summary>
    private static Task Errors(HttpContext ctx, int status, string code, string message, string details = "") =>
        WriteJson(ctx, status, new JsonObject
        {
            ["errors"] = new JsonArray(new JsonObject { ["code"] = code, ["message"] = message, ["details"] = details }),
        });

    private static async Task S3Error(HttpContext ctx, int status, string code, string message)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/xml";
        await ctx.Response.WriteAsync($"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>", ctx.RequestAborted).ConfigureAwait(false);
    }

    private static async Task WriteJson(HttpContext ctx, int status, JsonNode body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(body.ToJsonString(), ctx.RequestAborted).ConfigureAwait(false);
    }

    private static async Task<JsonNode?> ReadJson(HttpContext ctx)
    {
        var bytes = await ReadBody(ctx, RequestBytesMax).ConfigureAwait(false);
        if (bytes is null || bytes.Length == 0)
        {
            return null;
        }
        try
        {
            return JsonNode.Parse(bytes);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static Task<byte[]?> ReadBody(HttpContext ctx, int bytesMax) => EmulatorSupport.ReadBodyAsync(ctx.Request, bytesMax, ctx.RequestAborted);

    private sealed class Listing(string productType)
    {
        public string ProductType { get; } = productType;
        public long? Quantity { get; set; }
    }

    private sealed record StoredDocument(string ContentType, bool IsResult)
    {
        public byte[]? Content { get; set; }
        public string? Compression { get; init; }
    }

    private sealed class EmulatedFeed(string id, string type, string[] marketplaceIds, string inputDocumentId, DateTimeOffset created, bool fatal)
    {
        public string Id { get; } = id;
        public string Type { get; } = type;
        public string[] MarketplaceIds { get; } = marketplaceIds;
        public string InputDocumentId { get; } = inputDocumentId;
        public DateTimeOffset Created { get; } = created;
        public bool Fatal { get; } = fatal;
        public string Status { get; set; } = "IN_QUEUE";
        public DateTimeOffset? Started { get; set; }
        public DateTimeOffset? Ended { get; set; }
        public string? ResultDocumentId { get; set; }
    }

    /// <summary>The server side of a usage plan: a token bucket that answers yes or no at once.</summary>
    private sealed class Limiter(AmazonRateLimit limit, TimeProvider time)
    {
        private readonly Lock _gate = new();
        private double _tokens = limit.Burst;
        private long _last = time.GetTimestamp();

        public double RatePerSecond => limit.RatePerSecond;

        public bool TryTake()
        {
            lock (_gate)
            {
                var now = time.GetTimestamp();
                _tokens = Math.Min(limit.Burst, _tokens + (time.GetElapsedTime(_last, now).TotalSeconds * limit.RatePerSecond));
                _last = now;
                if (_tokens < 1)
                {
                    return false;
                }
                _tokens -= 1;
                return true;
            }
        }
    }
}
