using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Truestock.Connectors.Emulators;

/// <summary>Settings of a <see cref="ShopifyEmulator"/>; defaults are Shopify's documented values where it documents them.</summary>
public sealed class ShopifyEmulatorOptions
{
    /// <summary>The fixed Admin API access token the emulator accepts in <c>X-Shopify-Access-Token</c>.</summary>
    public string AccessToken { get; set; } = "shpat_emulator_token";

    /// <summary>The client id the client credentials grant accepts.</summary>
    public string ClientId { get; set; } = "emulator-client-id";

    /// <summary>The client secret the client credentials grant accepts.</summary>
    public string ClientSecret { get; set; } = "emulator-client-secret";

    /// <summary>How long tokens from the client credentials grant live (Shopify: 86,399 s).</summary>
    public TimeSpan IssuedTokenLifetime { get; set; } = TimeSpan.FromSeconds(86_399);

    /// <summary>
    /// The cost bucket's size in points. Shopify reports it as <c>throttleStatus.maximumAvailable</c>
    /// but no longer documents it per plan; 1,000 equals the single-query limit.
    /// </summary>
    public double BucketSize { get; set; } = 1000;

    /// <summary>Points restored per second (Shopify documents 100 for the Standard plan).</summary>
    public double RestoreRate { get; set; } = 100;

    /// <summary>The most a single query may cost (Shopify: 1,000 points on every plan).</summary>
    public double QueryCostMax { get; set; } = 1000;

    /// <summary>The id of the location the emulator creates, stocking listings by default.</summary>
    public string LocationId { get; set; } = "gid://shopify/Location/1";

    /// <summary>The name of that location.</summary>
    public string LocationName { get; set; } = "Main warehouse";

    /// <summary>The clock for the cost bucket and token expiry (real time by default).</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>How many idempotency keys the emulator remembers (the oldest are forgotten first).</summary>
    public int IdempotencyKeysMax { get; set; } = 10_000;
}

/// <summary>
/// An emulator of the Shopify GraphQL Admin API, for tests and the demo: it is NOT Shopify. It
/// serves <c>POST /admin/api/{version}/graphql.json</c> and the client credentials grant
/// (<c>POST /admin/oauth/access_token</c>). It parses GraphQL documents (operations, fields,
/// aliases, arguments, variables, directives; no fragments), validates them against the part of
/// the schema the Truestock connector uses (<c>inventoryItems</c>, <c>locations</c>,
/// <c>location</c>, <c>inventoryItem</c>, <c>inventorySetQuantities</c>) with the messages
/// Shopify's GraphQL server gives, coerces variables like Shopify (invalid input answers
/// <c>INVALID_VARIABLE</c>), enforces the calculated-query-cost leaky bucket (HTTP 200 with
/// <c>THROTTLED</c> and the cost extension when the bucket lacks the requested cost, refunding the
/// difference between requested and actual cost), applies <c>inventorySetQuantities</c> atomically
/// with the version's compare-and-swap rules (compareQuantity before 2026-01, changeFromQuantity
/// from 2026-01, mandatory with <c>@idempotent</c> from 2026-04) and idempotency keys, checks the
/// access token (HTTP 401), and injects faults from <see cref="Faults"/> on the GraphQL endpoint.
/// </summary>
public sealed class ShopifyEmulator : IAsyncDisposable
{
    private const int RequestBytesMax = 1024 * 1024;
    private const int ConnectionPageMax = 250;
    private const int InputArrayMax = 250;
    private const long QuantityMax = 1_000_000_000;
    private const double MutationCost = 10;

    private static readonly string[] Reasons =
    [
        "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
        "movement_received", "movement_canceled", "other", "promotion", "quality_control", "received",
        "reservation_created", "reservation_deleted", "reservation_updated", "restock", "safety_stock", "shrinkage",
    ];

    private readonly WebApplication _app;
    private readonly ShopifyEmulatorOptions _options;
    private readonly Lock _gate = new();
    private readonly List<Item> _items = [];
    private readonly Dictionary<string, Item> _itemsById = new(StringComparer.Ordinal);
    private readonly List<Location> _locations = [];
    private readonly Dictionary<string, IdempotentRecord> _idempotency = new(StringComparer.Ordinal);
    private readonly Queue<string> _idempotencyOrder = new();
    private readonly Dictionary<string, DateTimeOffset> _issuedTokens = new(StringComparer.Ordinal);
    private readonly CostBucket _bucket;
    private long _nextId = 1000;
    private long _requests;
    private long _throttled;
    private long _updatesApplied;
    private long _catalogQueries;
    private long _staleRejections;
    private long _idempotentReplays;
    private long _tokensIssued;

    private ShopifyEmulator(WebApplication app, Uri baseAddress, ShopifyEmulatorOptions options, CostBucket bucket)
    {
        _app = app;
        BaseAddress = baseAddress;
        _options = options;
        _bucket = bucket;
    }

    /// <summary>The emulator's base address (use it as the connector's <c>baseUrl</c>).</summary>
    public Uri BaseAddress { get; }

    /// <summary>Faults injected into GraphQL requests.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>The id of the emulator's first location.</summary>
    public string LocationId => _options.LocationId;

    /// <summary>HTTP requests received (GraphQL and token requests).</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Requests answered with THROTTLED.</summary>
    public long ThrottledResponses => Interlocked.Read(ref _throttled);

    /// <summary>Quantity writes applied (one per item of an accepted <c>inventorySetQuantities</c>; replays do not count).</summary>
    public long UpdatesApplied => Interlocked.Read(ref _updatesApplied);

    /// <summary><c>inventoryItems</c> queries executed (catalogue searches).</summary>
    public long CatalogQueries => Interlocked.Read(ref _catalogQueries);

    /// <summary>Items refused because their compare-and-swap value was stale.</summary>
    public long StaleRejections => Interlocked.Read(ref _staleRejections);

    /// <summary>Mutations answered from the idempotency store instead of being applied again.</summary>
    public long IdempotentReplays => Interlocked.Read(ref _idempotentReplays);

    /// <summary>Access tokens issued by the client credentials grant.</summary>
    public long TokensIssued => Interlocked.Read(ref _tokensIssued);

    /// <summary>The "available" quantity of every stocked SKU at the emulator's first location.</summary>
    public IReadOnlyDictionary<string, long> Quantities
    {
        get
        {
            lock (_gate)
            {
                var result = new Dictionary<string, long>(StringComparer.Ordinal);
                foreach (var item in _items)
                {
                    if (!result.ContainsKey(item.Sku) && item.Levels.TryGetValue(_options.LocationId, out var level))
                    {
                        result[item.Sku] = level.Available;
                    }
                }
                return result;
            }
        }
    }

    /// <summary>Starts an emulator on a free 127.0.0.1 port.</summary>
    public static async Task<ShopifyEmulator> StartAsync(ShopifyEmulatorOptions? options = null)
    {
        options ??= new ShopifyEmulatorOptions();
        var bucket = new CostBucket(options.BucketSize, options.RestoreRate, options.Time);
        ShopifyEmulator? emulator = null;
        var (app, address) = await EmulatorHost.StartAsync(app =>
        {
            app.MapPost("/admin/api/{version}/graphql.json", (RequestDelegate)(context => emulator!.HandleGraphQlAsync(context)));
            app.MapPost("/admin/oauth/access_token", (RequestDelegate)(context => emulator!.HandleTokenAsync(context)));
        }).ConfigureAwait(false);
        emulator = new ShopifyEmulator(app, address, options, bucket);
        emulator._locations.Add(new Location(options.LocationId, options.LocationName, true));
        return emulator;
    }

    /// <summary>
    /// Creates an inventory item with this SKU (a new one each call: Shopify allows duplicate SKUs),
    /// stocked at the first location unless <paramref name="stocked"/> is false. Returns its GID.
    /// </summary>
    public string AddListing(string sku, long available = 0, bool tracked = true, bool stocked = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(sku);
        lock (_gate)
        {
            var item = new Item($"gid://shopify/InventoryItem/{++_nextId}", sku, tracked);
            if (stocked)
            {
                item.Levels[_options.LocationId] = new Level { Available = available, OnHand = available };
            }
            _items.Add(item);
            _itemsById[item.Id] = item;
            return item.Id;
        }
    }

    /// <summary>Adds a location; returns its GID.</summary>
    public string AddLocation(string name, bool isActive = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        lock (_gate)
        {
            var location = new Location($"gid://shopify/Location/{++_nextId}", name, isActive);
            _locations.Add(location);
            return location.Id;
        }
    }

    /// <summary>Changes a SKU's available quantity as Shopify itself would (an order, the merchant in the admin).</summary>
    public void SetAvailable(string sku, long available)
    {
        lock (_gate)
        {
            var item = _items.FirstOrDefault(i => i.Sku == sku && i.Levels.ContainsKey(_options.LocationId))
                ?? throw new ArgumentException($"No listing of SKU '{sku}' is stocked at the emulator's location.", nameof(sku));
            var level = item.Levels[_options.LocationId];
            level.OnHand += available - level.Available;
            level.Available = available;
        }
    }

    /// <summary>The available quantity of the SKU at the first location; null when not listed or not stocked there.</summary>
    public long? QuantityOf(string sku)
    {
        lock (_gate)
        {
            var item = _items.FirstOrDefault(i => i.Sku == sku && i.Levels.ContainsKey(_options.LocationId));
            return item?.Levels[_options.LocationId].Available;
        }
    }

    /// <summary>Empties the cost bucket, as if another caller of the same app had just spent it.</summary>
    public void DrainBucket()
    {
        lock (_gate)
        {
            _bucket.Drain();
        }
    }

    /// <summary>Makes every token issued so far invalid (as when they expire or the app is reinstalled).</summary>
    public void RevokeIssuedTokens()
    {
        lock (_gate)
        {
            _issuedTokens.Clear();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- HTTP

    private async Task HandleGraphQlAsync(HttpContext http)
    {
        Interlocked.Increment(ref _requests);
        if (Faults.TakeTransientError())
        {
            await WriteAsync(http, StatusCodes.Status503ServiceUnavailable, new JsonObject { ["errors"] = "Service Unavailable" }).ConfigureAwait(false);
            return;
        }
        // A timeout fault lets the request take effect and then loses the answer, the case
        // idempotency keys exist for; the client gives up waiting.
        var loseAnswer = Faults.TakeTimeout();

        var version = http.GetRouteValue("version") as string ?? "";
        var dialect = DialectOf(version);
        if (dialect is null)
        {
            await WriteAsync(http, StatusCodes.Status404NotFound, new JsonObject { ["errors"] = "Not Found" }).ConfigureAwait(false);
            return;
        }
        var token = http.Request.Headers["X-Shopify-Access-Token"].ToString();
        if (!IsValidToken(token))
        {
            await WriteAsync(http, StatusCodes.Status401Unauthorized, new JsonObject { ["errors"] = "[API] Invalid API key or access token (unrecognized login or wrong password)" }).ConfigureAwait(false);
            return;
        }
        if (http.Request.ContentType is not { } contentType || !contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            await WriteAsync(http, StatusCodes.Status400BadRequest, new JsonObject { ["errors"] = "Bad Request: the Content-Type must be application/json." }).ConfigureAwait(false);
            return;
        }
        var body = await ReadBodyAsync(http).ConfigureAwait(false);
        if (body is null)
        {
            await WriteAsync(http, StatusCodes.Status413PayloadTooLarge, new JsonObject { ["errors"] = "Request Entity Too Large" }).ConfigureAwait(false);
            return;
        }
        JsonObject? request;
        try
        {
            request = JsonNode.Parse(body) as JsonObject;
        }
        catch (JsonException)
        {
            request = null;
        }
        if (request?["query"] is not JsonValue queryValue || !queryValue.TryGetValue<string>(out var query)
            || (request["variables"] is { } v && v is not JsonObject)
            || (request["operationName"] is { } n && (n is not JsonValue nv || !nv.TryGetValue<string>(out _))))
        {
            await WriteAsync(http, StatusCodes.Status400BadRequest, new JsonObject { ["errors"] = new JsonObject { ["query"] = "Required parameter missing or invalid" } }).ConfigureAwait(false);
            return;
        }
        var variables = request["variables"] as JsonObject ?? [];
        var operationName = request["operationName"]?.GetValue<string>();

        var answer = Execute(dialect.Value, query, variables, operationName);

        if (loseAnswer)
        {
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, http.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The client gave up, as a timed-out client does.
            }
            return;
        }
        await WriteAsync(http, StatusCodes.Status200OK, answer).ConfigureAwait(false);
    }

    private async Task HandleTokenAsync(HttpContext http)
    {
        Interlocked.Increment(ref _requests);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        if (http.Request.HasFormContentType)
        {
            var form = await http.Request.ReadFormAsync(http.RequestAborted).ConfigureAwait(false);
            foreach (var (key, value) in form)
            {
                fields[key] = value.ToString();
            }
        }
        else if (await ReadBodyAsync(http).ConfigureAwait(false) is { } body)
        {
            try
            {
                if (JsonNode.Parse(body) is JsonObject json)
                {
                    foreach (var (key, value) in json)
                    {
                        if (value is JsonValue text && text.TryGetValue<string>(out var s))
                        {
                            fields[key] = s;
                        }
                    }
                }
            }
            catch (JsonException)
            {
                // An unreadable body is a request without credentials.
            }
        }
        if (fields.GetValueOrDefault("grant_type") != "client_credentials")
        {
            await WriteAsync(http, StatusCodes.Status400BadRequest, new JsonObject { ["error"] = "unsupported_grant_type", ["error_description"] = "The grant_type must be client_credentials." }).ConfigureAwait(false);
            return;
        }
        if (fields.GetValueOrDefault("client_id") != _options.ClientId || fields.GetValueOrDefault("client_secret") != _options.ClientSecret)
        {
            await WriteAsync(http, StatusCodes.Status400BadRequest, new JsonObject { ["error"] = "invalid_client", ["error_description"] = "Client authentication failed." }).ConfigureAwait(false);
            return;
        }
        var token = "shpat_emulated_" + Guid.NewGuid().ToString("N");
        lock (_gate)
        {
            _issuedTokens[token] = _options.Time.GetUtcNow() + _options.IssuedTokenLifetime;
        }
        Interlocked.Increment(ref _tokensIssued);
        await WriteAsync(http, StatusCodes.Status200OK, new JsonObject
        {
            ["access_token"] = token,
            ["scope"] = "read_inventory,write_inventory,read_locations,read_products",
            ["expires_in"] = (long)_options.IssuedTokenLifetime.TotalSeconds,
        }).ConfigureAwait(false);
    }

    private bool IsValidToken(string token)
    {
        if (token.Length == 0)
        {
            return false;
        }
        if (string.Equals(token, _options.AccessToken, StringComparison.Ordinal))
        {
            return true;
        }
        lock (_gate)
        {
            return _issuedTokens.TryGetValue(token, out var expires) && _options.Time.GetUtcNow() < expires;
        }
    }

    private static Task<byte[]?> ReadBodyAsync(HttpContext http) => EmulatorSupport.ReadBodyAsync(http.Request, RequestBytesMax, http.RequestAborted);

    private static Task WriteAsync(HttpContext http, int status, JsonNode body)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json; charset=utf-8";
        return http.Response.WriteAsync(body.ToJsonString(), http.RequestAborted);
    }

    /// <summary>The schema dialect of an API version; null for versions the emulator does not serve.</summary>
    private static Dialect? DialectOf(string version)
    {
        if (version.Length != 7 || version[4] != '-'
            || !int.TryParse(version.AsSpan(0, 4), NumberStyles.None, CultureInfo.InvariantCulture, out var year)
            || !int.TryParse(version.AsSpan(5, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var month)
            || month is not (1 or 4 or 7 or 10))
        {
            return null;
        }
        var number = (year * 100) + month;
        return number switch
        {
            < 2024_07 => null,
            < 2026_01 => Dialect.CompareQuantity,
            < 2026_04 => Dialect.ChangeFromOptional,
            _ => Dialect.ChangeFromRequired,
        };
    }

    // ---------------------------------------------------------------- GraphQL execution

    private JsonObject Execute(Dialect dialect, string query, JsonObject variables, string? operationName)
    {
        GqlDocument document;
        try
        {
            document = GqlParser.Parse(query);
        }
        catch (GqlSyntaxException e)
        {
            return ErrorAnswer(new GqlError(e.Message, e.Line, e.Column));
        }
        GqlOperation? operation = operationName is not null
            ? document.Operations.FirstOrDefault(o => o.Name == operationName)
            : document.Operations.Count == 1 ? document.Operations[0] : null;
        if (operation is null)
        {
            return ErrorAnswer(new GqlError(operationName is null
                ? "An operation name is required when the document holds several operations"
                : $"No operation named \"{operationName}\""));
        }

        var schema = Schema.For(dialect);
        var validator = new Validator(schema, operation);
        var errors = validator.Validate();
        if (errors.Count > 0)
        {
            return ErrorAnswer([.. errors]);
        }
        var coerced = validator.CoerceVariables(variables, out var variableErrors);
        if (variableErrors.Count > 0)
        {
            return ErrorAnswer([.. variableErrors]);
        }

        var requested = RequestedCost(schema, operation, coerced);
        if (requested > _options.QueryCostMax)
        {
            return ErrorAnswer(new GqlError(
                $"Query cost is {requested.ToString(CultureInfo.InvariantCulture)}, which exceeds the single query max cost limit ({_options.QueryCostMax.ToString(CultureInfo.InvariantCulture)}).",
                Extensions: new JsonObject { ["code"] = "MAX_COST_EXCEEDED", ["cost"] = requested, ["maxCost"] = _options.QueryCostMax }));
        }

        lock (_gate)
        {
            if (!_bucket.TryTake(requested))
            {
                Interlocked.Increment(ref _throttled);
                var throttled = ErrorAnswer(new GqlError("Throttled", Extensions: new JsonObject
                {
                    ["code"] = "THROTTLED",
                    ["documentation"] = "https://shopify.dev/api/usage/rate-limits",
                }));
                throttled["extensions"] = CostExtension(requested, null);
                return throttled;
            }
            var execution = new Execution(this, schema, dialect, coerced);
            var data = execution.Run(operation);
            _bucket.Refund(Math.Max(0, requested - execution.ActualCost));
            var answer = new JsonObject { ["data"] = data };
            if (execution.Errors.Count > 0)
            {
                answer["errors"] = new JsonArray([.. execution.Errors.Select(e => e.ToJson())]);
            }
            answer["extensions"] = CostExtension(requested, execution.ActualCost);
            return answer;
        }
    }

    private JsonObject CostExtension(double requested, double? actual) => new()
    {
        ["cost"] = new JsonObject
        {
            ["requestedQueryCost"] = requested,
            ["actualQueryCost"] = actual,
            ["throttleStatus"] = new JsonObject
            {
                ["maximumAvailable"] = _bucket.Capacity,
                ["currentlyAvailable"] = Math.Floor(_bucket.Available),
                ["restoreRate"] = _bucket.RestoreRate,
            },
        },
    };

    private static JsonObject ErrorAnswer(params GqlError[] errors) =>
        new() { ["errors"] = new JsonArray([.. errors.Select(e => e.ToJson())]) };

    /// <summary>
    /// The requested cost by Shopify's rules: scalars and enums cost 0, an object 1 plus its
    /// selections, a connection 2 plus, per requested node (<c>first</c>/<c>last</c>), the cost of
    /// the node, and a mutation 10.
    /// </summary>
    private static double RequestedCost(Schema schema, GqlOperation operation, JsonObject variables)
    {
        if (operation.Kind == "mutation")
        {
            return MutationCost * operation.Selections.Count(s => s.Name != "__typename");
        }
        return SelectionCost(schema, schema.Query, operation.Selections, variables);
    }

    private static double SelectionCost(Schema schema, ObjectType type, IReadOnlyList<GqlField> selections, JsonObject variables)
    {
        double total = 0;
        foreach (var field in selections)
        {
            if (field.Name == "__typename" || !type.Fields.TryGetValue(field.Name, out var definition))
            {
                continue;
            }
            if (!schema.Objects.TryGetValue(definition.Type.NamedType, out var fieldType))
            {
                continue;
            }
            var children = field.Selections ?? [];
            if (fieldType.Name.EndsWith("Connection", StringComparison.Ordinal))
            {
                var arguments = Validator.Arguments(field, definition, variables);
                var size = (int)(Number(arguments["first"]) ?? Number(arguments["last"]) ?? 0);
                double cost = 2;
                foreach (var child in children)
                {
                    cost += child.Name switch
                    {
                        "nodes" => size * (1 + SelectionCost(schema, schema.Objects[fieldType.Fields["nodes"].Type.NamedType], child.Selections ?? [], variables)),
                        "edges" => size * SelectionCost(schema, schema.Objects[fieldType.Fields["edges"].Type.NamedType], child.Selections ?? [], variables),
                        "pageInfo" => 1,
                        _ => 0,
                    };
                }
                total += cost;
            }
            else
            {
                total += 1 + SelectionCost(schema, fieldType, children, variables);
            }
        }
        return total;
    }

    /// <summary>A JSON number as a double, whatever backs the node (parsed JSON or a CLR value); null otherwise.</summary>
    private static double? Number(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number
            ? double.Parse(value.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture)
            : null;

    private static long Integer(JsonNode? node) => (long)(Number(node) ?? 0);

    private static bool Flag(JsonNode? node) => node is JsonValue value && value.GetValueKind() == JsonValueKind.True;

    private static string? Text(JsonNode? node) => node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    // ---------------------------------------------------------------- resolvers (run under _gate)

    private ConnectionPage<Item> SearchItems(JsonObject arguments)
    {
        Interlocked.Increment(ref _catalogQueries);
        var search = SearchQuery.Parse(Text(arguments["query"]));
        var matches = _items.Where(i => !Faults.IsBroken(i.Sku) && search.Matches(field => field switch
        {
            "sku" => i.Sku,
            "id" => i.Id[(i.Id.LastIndexOf('/') + 1)..],
            _ => null,
        })).ToList();
        return ConnectionPage<Item>.Of(matches, arguments);
    }

    private ConnectionPage<Location> SearchLocations(JsonObject arguments)
    {
        var search = SearchQuery.Parse(Text(arguments["query"]));
        var includeInactive = Flag(arguments["includeInactive"]);
        var matches = _locations
            .Where(l => (l.IsActive || includeInactive) && search.Matches(field => field switch
            {
                "name" => l.Name,
                "id" => l.Id[(l.Id.LastIndexOf('/') + 1)..],
                _ => null,
            }, caseInsensitive: true))
            .ToList();
        return ConnectionPage<Location>.Of(matches, arguments);
    }

    private SetResult SetQuantities(Dialect dialect, JsonObject input, string? idempotencyKey)
    {
        var parameters = input.ToJsonString();
        if (idempotencyKey is not null && _idempotency.TryGetValue(idempotencyKey, out var record))
        {
            if (record.Parameters != parameters)
            {
                return SetResult.Failure(new UserError("IDEMPOTENCY_KEY_PARAMETER_MISMATCH", null, "The same idempotency key cannot be used with different operation parameters."));
            }
            if (record.Result.Group is null)
            {
                return SetResult.Failure(new UserError("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED", null, "A previous request with this idempotency key failed. Retry with a new idempotency key."));
            }
            Interlocked.Increment(ref _idempotentReplays);
            return record.Result;
        }
        var result = ApplySetQuantities(dialect, input);
        if (idempotencyKey is not null)
        {
            _idempotency[idempotencyKey] = new IdempotentRecord(parameters, result);
            _idempotencyOrder.Enqueue(idempotencyKey);
            while (_idempotencyOrder.Count > _options.IdempotencyKeysMax)
            {
                _idempotency.Remove(_idempotencyOrder.Dequeue());
            }
        }
        return result;
    }

    /// <summary>Validates every quantity first and applies all or none, as one adjustment group.</summary>
    private SetResult ApplySetQuantities(Dialect dialect, JsonObject input)
    {
        var errors = new List<UserError>();
        var name = Text(input["name"]) ?? "";
        var reason = Text(input["reason"]) ?? "";
        if (name is not ("available" or "on_hand"))
        {
            errors.Add(new UserError("INVALID_NAME", ["input", "name"], "The quantity name must be either 'available' or 'on_hand'."));
        }
        if (!Reasons.Contains(reason, StringComparer.Ordinal))
        {
            errors.Add(new UserError("INVALID_REASON", ["input", "reason"], "The specified reason is invalid."));
        }
        if (input["referenceDocumentUri"] is JsonValue && !Uri.TryCreate(Text(input["referenceDocumentUri"]), UriKind.Absolute, out _))
        {
            errors.Add(new UserError("INVALID_REFERENCE_DOCUMENT", ["input", "referenceDocumentUri"], "The specified reference document is invalid."));
        }
        var ignoreCompare = Flag(input["ignoreCompareQuantity"]);
        var quantities = input["quantities"]!.AsArray();
        var changes = new List<(Item Item, Level Level, long Quantity)>();
        var pairs = new HashSet<(string, string)>();
        for (var i = 0; i < quantities.Count; i++)
        {
            var quantity = quantities[i]!.AsObject();
            var index = i.ToString(CultureInfo.InvariantCulture);
            var itemId = Text(quantity["inventoryItemId"]) ?? quantity["inventoryItemId"]?.ToJsonString() ?? "";
            var locationId = Text(quantity["locationId"]) ?? quantity["locationId"]?.ToJsonString() ?? "";
            var value = Integer(quantity["quantity"]);
            var location = _locations.FirstOrDefault(l => l.Id == locationId);
            if (location is null)
            {
                errors.Add(new UserError("INVALID_LOCATION", ["input", "quantities", index, "locationId"], "The specified location could not be found."));
                continue;
            }
            if (!_itemsById.TryGetValue(itemId, out var item) || Faults.IsBroken(item.Sku))
            {
                errors.Add(new UserError("INVALID_INVENTORY_ITEM", ["input", "quantities", index, "inventoryItemId"], "The specified inventory item could not be found."));
                continue;
            }
            if (!pairs.Add((itemId, locationId)))
            {
                errors.Add(new UserError("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", ["input", "quantities", index], "The combination of inventoryItemId and locationId must be unique."));
                continue;
            }
            if (!item.Levels.TryGetValue(locationId, out var level))
            {
                errors.Add(new UserError("ITEM_NOT_STOCKED_AT_LOCATION", ["input", "quantities", index, "locationId"], "The specified inventory item is not stocked at the location."));
                continue;
            }
            if (value < 0)
            {
                errors.Add(new UserError("INVALID_QUANTITY_NEGATIVE", ["input", "quantities", index, "quantity"], "The quantity can't be negative."));
                continue;
            }
            if (value > QuantityMax)
            {
                errors.Add(new UserError("INVALID_QUANTITY_TOO_HIGH", ["input", "quantities", index, "quantity"], "The total quantity can't be higher than 1,000,000,000."));
                continue;
            }
            var current = name == "on_hand" ? level.OnHand : level.Available;
            if (CompareError(dialect, quantity, ignoreCompare, current, index) is { } compareError)
            {
                if (compareError.Code.EndsWith("_STALE", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref _staleRejections);
                }
                errors.Add(compareError);
                continue;
            }
            changes.Add((item, level, value));
        }
        if (errors.Count > 0)
        {
            return new SetResult(null, errors);
        }
        foreach (var (_, level, value) in changes)
        {
            if (name == "on_hand")
            {
                level.Available += value - level.OnHand;
                level.OnHand = value;
            }
            else
            {
                level.OnHand += value - level.Available;
                level.Available = value;
            }
            Interlocked.Increment(ref _updatesApplied);
        }
        return new SetResult($"gid://shopify/InventoryAdjustmentGroup/{++_nextId}", [], reason);
    }

    private static UserError? CompareError(Dialect dialect, JsonObject quantity, bool ignoreCompare, long current, string index)
    {
        if (dialect != Dialect.CompareQuantity && quantity.ContainsKey("changeFromQuantity"))
        {
            // changeFromQuantity, when given (even as null), overrides compareQuantity and ignoreCompareQuantity.
            return quantity["changeFromQuantity"] is JsonValue expected && Integer(expected) != current
                ? new UserError("CHANGE_FROM_QUANTITY_STALE", ["input", "quantities", index, "changeFromQuantity"], "The changeFromQuantity value does not match persisted value.")
                : null;
        }
        if (dialect == Dialect.ChangeFromRequired)
        {
            return new UserError("COMPARE_QUANTITY_REQUIRED", ["input", "quantities", index, "changeFromQuantity"], "changeFromQuantity must be given for each quantity; pass null to skip the compare-and-swap check.");
        }
        if (ignoreCompare)
        {
            return null;
        }
        if (quantity["compareQuantity"] is not JsonValue compare)
        {
            return new UserError("COMPARE_QUANTITY_REQUIRED", ["input", "quantities", index, "compareQuantity"], "The compareQuantity argument must be given to each quantity or ignored using ignoreCompareQuantity.");
        }
        return Integer(compare) != current
            ? new UserError("COMPARE_QUANTITY_STALE", ["input", "quantities", index, "compareQuantity"], "The compareQuantity value does not match persisted value.")
            : null;
    }

    // ---------------------------------------------------------------- model

    private enum Dialect
    {
        /// <summary>Before 2026-01: compareQuantity and ignoreCompareQuantity; no @idempotent.</summary>
        CompareQuantity,
        /// <summary>2026-01: changeFromQuantity optional (overrides compareQuantity); @idempotent optional.</summary>
        ChangeFromOptional,
        /// <summary>2026-04 and later: changeFromQuantity and @idempotent mandatory; compareQuantity removed.</summary>
        ChangeFromRequired,
    }

    private sealed record Item(string Id, string Sku, bool Tracked)
    {
        public Dictionary<string, Level> Levels { get; } = new(StringComparer.Ordinal);
    }

    private sealed class Level
    {
        public long Available { get; set; }
        public long OnHand { get; set; }
    }

    private sealed record Location(string Id, string Name, bool IsActive);

    private sealed record UserError(string Code, string[]? Field, string Message);

    private sealed record SetResult(string? Group, List<UserError> Errors, string? Reason = null)
    {
        public static SetResult Failure(UserError error) => new(null, [error]);
    }

    private sealed record IdempotentRecord(string Parameters, SetResult Result);

    private sealed record ConnectionPage<T>(List<T> Items, int Offset, bool HasNextPage, bool HasPreviousPage)
    {
        public static ConnectionPage<T> Of(List<T> all, JsonObject arguments)
        {
            if (Flag(arguments["reverse"]))
            {
                all = [.. Enumerable.Reverse(all)];
            }
            var first = Number(arguments["first"]);
            var last = Number(arguments["last"]);
            var start = Text(arguments["after"]) is { } after ? CursorIndex(after) + 1 : 0;
            var end = Text(arguments["before"]) is { } before ? CursorIndex(before) : all.Count;
            start = Math.Clamp(start, 0, all.Count);
            end = Math.Clamp(end, start, all.Count);
            var slice = all.GetRange(start, end - start);
            var offset = start;
            if (first is { } f && slice.Count > f)
            {
                slice = slice.GetRange(0, (int)f);
            }
            else if (last is { } l && slice.Count > l)
            {
                offset += slice.Count - (int)l;
                slice = slice.GetRange(slice.Count - (int)l, (int)l);
            }
            return new ConnectionPage<T>(slice, offset, offset + slice.Count < end, offset > 0);
        }

        public string Cursor(int index) => Convert.ToBase64String(Encoding.UTF8.GetBytes("emulator:" + (Offset + index).ToString(CultureInfo.InvariantCulture)));

        private static int CursorIndex(string cursor)
        {
            try
            {
                var text = Encoding.UTF8.GetString(Convert.FromBase64String(cursor));
                return text.StartsWith("emulator:", StringComparison.Ordinal) && int.TryParse(text.AsSpan(9), NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : -1;
            }
            catch (FormatException)
            {
                return -1;
            }
        }
    }

    /// <summary>The leaky bucket of one app on one store, in query-cost points.</summary>
    private sealed class CostBucket(double capacity, double restoreRate, TimeProvider time)
    {
        private double _available = capacity;
        private long _last = time.GetTimestamp();

        public double Capacity { get; } = capacity;

        public double RestoreRate { get; } = restoreRate;

        public double Available
        {
            get
            {
                Restore();
                return _available;
            }
        }

        public bool TryTake(double cost)
        {
            Restore();
            if (_available < cost)
            {
                return false;
            }
            _available -= cost;
            return true;
        }

        public void Refund(double points)
        {
            Restore();
            _available = Math.Min(Capacity, _available + points);
        }

        public void Drain()
        {
            Restore();
            _available = 0;
        }

        private void Restore()
        {
            var now = time.GetTimestamp();
            _available = Math.Min(Capacity, _available + (time.GetElapsedTime(_last, now).TotalSeconds * RestoreRate));
            _last = now;
        }
    }

    /// <summary>
    /// Shopify's search syntax, as far as the connector uses it: terms <c>field:value</c> or
    /// <c>field:"quoted value"</c> (with \" and \\ escapes), joined by AND (or juxtaposition) and OR.
    /// </summary>
    private sealed class SearchQuery
    {
        private readonly List<List<(string Field, string Value)>> _alternatives;

        private SearchQuery(List<List<(string Field, string Value)>> alternatives) => _alternatives = alternatives;

        public static SearchQuery Parse(string? text)
        {
            var alternatives = new List<List<(string, string)>> { new() };
            if (string.IsNullOrWhiteSpace(text))
            {
                return new SearchQuery(alternatives);
            }
            var i = 0;
            while (i < text.Length)
            {
                if (char.IsWhiteSpace(text[i]))
                {
                    i++;
                    continue;
                }
                var start = i;
                while (i < text.Length && !char.IsWhiteSpace(text[i]) && text[i] != ':')
                {
                    i++;
                }
                var word = text[start..i];
                if (i >= text.Length || text[i] != ':')
                {
                    if (word == "OR")
                    {
                        alternatives.Add([]);
                    }
                    else if (word != "AND")
                    {
                        // A bare word is a free-text term; the emulator matches it against nothing.
                        alternatives[^1].Add(("", word));
                    }
                    continue;
                }
                i++;
                var value = new StringBuilder();
                if (i < text.Length && text[i] == '"')
                {
                    i++;
                    while (i < text.Length && text[i] != '"')
                    {
                        if (text[i] == '\\' && i + 1 < text.Length)
                        {
                            i++;
                        }
                        value.Append(text[i++]);
                    }
                    i++;
                }
                else
                {
                    while (i < text.Length && !char.IsWhiteSpace(text[i]))
                    {
                        value.Append(text[i++]);
                    }
                }
                alternatives[^1].Add((word, value.ToString()));
            }
            return new SearchQuery(alternatives);
        }

        public bool Matches(Func<string, string?> fieldValue, bool caseInsensitive = false)
        {
            var comparison = caseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
            return _alternatives.Any(terms => terms.All(term => fieldValue(term.Field) is { } actual && string.Equals(actual, term.Value, comparison)));
        }
    }

    // ---------------------------------------------------------------- schema

    /// <summary>A type reference such as <c>[InventoryQuantityInput!]!</c>.</summary>
    private sealed record TypeRef(string? Name, TypeRef? OfList, bool NonNull)
    {
        public string NamedType => Name ?? OfList!.NamedType;

        public static TypeRef Parse(string text)
        {
            var nonNull = text.EndsWith('!');
            var core = nonNull ? text[..^1] : text;
            return core.StartsWith('[') ? new TypeRef(null, Parse(core[1..^1]), nonNull) : new TypeRef(core, null, nonNull);
        }

        public override string ToString() => (Name ?? $"[{OfList}]") + (NonNull ? "!" : "");
    }

    private sealed record FieldDef(TypeRef Type, Dictionary<string, TypeRef> Arguments);

    private sealed record ObjectType(string Name, Dictionary<string, FieldDef> Fields);

    private sealed class Schema
    {
        private static readonly Dictionary<Dialect, Schema> Cache = new()
        {
            [Dialect.CompareQuantity] = new Schema(Dialect.CompareQuantity),
            [Dialect.ChangeFromOptional] = new Schema(Dialect.ChangeFromOptional),
            [Dialect.ChangeFromRequired] = new Schema(Dialect.ChangeFromRequired),
        };

        private Schema(Dialect dialect)
        {
            Dialect = dialect;
            static FieldDef F(string type, params (string Name, string Type)[] arguments) =>
                new(TypeRef.Parse(type), arguments.ToDictionary(a => a.Name, a => TypeRef.Parse(a.Type), StringComparer.Ordinal));
            void O(string name, params (string Name, FieldDef Def)[] fields) =>
                Objects[name] = new ObjectType(name, fields.ToDictionary(f => f.Name, f => f.Def, StringComparer.Ordinal));
            (string, string)[] page = [("first", "Int"), ("after", "String"), ("last", "Int"), ("before", "String"), ("reverse", "Boolean"), ("query", "String")];

            O("QueryRoot",
                ("inventoryItems", F("InventoryItemConnection!", page)),
                ("inventoryItem", F("InventoryItem", ("id", "ID!"))),
                ("locations", F("LocationConnection!", [.. page, ("includeInactive", "Boolean"), ("includeLegacy", "Boolean")])),
                ("location", F("Location", ("id", "ID"))));
            O("Mutation",
                ("inventorySetQuantities", F("InventorySetQuantitiesPayload", ("input", "InventorySetQuantitiesInput!"))));
            O("InventoryItemConnection",
                ("nodes", F("[InventoryItem!]!")), ("edges", F("[InventoryItemEdge!]!")), ("pageInfo", F("PageInfo!")));
            O("InventoryItemEdge", ("node", F("InventoryItem!")), ("cursor", F("String!")));
            O("LocationConnection",
                ("nodes", F("[Location!]!")), ("edges", F("[LocationEdge!]!")), ("pageInfo", F("PageInfo!")));
            O("LocationEdge", ("node", F("Location!")), ("cursor", F("String!")));
            O("PageInfo",
                ("hasNextPage", F("Boolean!")), ("hasPreviousPage", F("Boolean!")), ("startCursor", F("String")), ("endCursor", F("String")));
            O("InventoryItem",
                ("id", F("ID!")), ("legacyResourceId", F("UnsignedInt64!")), ("sku", F("String")), ("tracked", F("Boolean!")),
                ("inventoryLevel", F("InventoryLevel", ("locationId", "ID!"))));
            O("InventoryLevel",
                ("id", F("ID!")), ("item", F("InventoryItem!")), ("location", F("Location!")),
                ("quantities", F("[InventoryQuantity!]!", ("names", "[String!]!"))));
            O("InventoryQuantity", ("name", F("String!")), ("quantity", F("Int!")));
            O("Location", ("id", F("ID!")), ("name", F("String!")), ("isActive", F("Boolean!")), ("legacyResourceId", F("UnsignedInt64!")));
            O("InventorySetQuantitiesPayload",
                ("inventoryAdjustmentGroup", F("InventoryAdjustmentGroup")), ("userErrors", F("[InventorySetQuantitiesUserError!]!")));
            O("InventoryAdjustmentGroup", ("id", F("ID!")), ("reason", F("String!")));
            O("InventorySetQuantitiesUserError", ("code", F("InventorySetQuantitiesUserErrorCode")), ("field", F("[String!]")), ("message", F("String!")));

            Inputs["InventorySetQuantitiesInput"] = new Dictionary<string, TypeRef>(StringComparer.Ordinal)
            {
                ["name"] = TypeRef.Parse("String!"),
                ["reason"] = TypeRef.Parse("String!"),
                ["referenceDocumentUri"] = TypeRef.Parse("String"),
                ["quantities"] = TypeRef.Parse("[InventoryQuantityInput!]!"),
            };
            Inputs["InventoryQuantityInput"] = new Dictionary<string, TypeRef>(StringComparer.Ordinal)
            {
                ["inventoryItemId"] = TypeRef.Parse("ID!"),
                ["locationId"] = TypeRef.Parse("ID!"),
                ["quantity"] = TypeRef.Parse("Int!"),
            };
            if (dialect != Dialect.ChangeFromRequired)
            {
                Inputs["InventorySetQuantitiesInput"]["ignoreCompareQuantity"] = TypeRef.Parse("Boolean");
                Inputs["InventoryQuantityInput"]["compareQuantity"] = TypeRef.Parse("Int");
            }
            if (dialect != Dialect.CompareQuantity)
            {
                Inputs["InventoryQuantityInput"]["changeFromQuantity"] = TypeRef.Parse("Int");
            }
        }

        public Dialect Dialect { get; }

        public Dictionary<string, ObjectType> Objects { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, Dictionary<string, TypeRef>> Inputs { get; } = new(StringComparer.Ordinal);

        public ObjectType Query => Objects["QueryRoot"];

        public ObjectType Mutation => Objects["Mutation"];

        public static bool IsScalar(string name) => name is "String" or "Int" or "ID" or "Boolean" or "Float" or "UnsignedInt64" or "InventorySetQuantitiesUserErrorCode";

        public static Schema For(Dialect dialect) => Cache[dialect];
    }

    // ---------------------------------------------------------------- validation and coercion

    /// <summary>Static validation of one operation, with the messages and codes of Shopify's GraphQL server.</summary>
    private sealed class Validator(Schema schema, GqlOperation operation)
    {
        private readonly List<GqlError> _errors = [];
        private readonly HashSet<string> _used = new(StringComparer.Ordinal);

        private string OperationLabel => operation.Name ?? $"anonymous {operation.Kind}";

        public List<GqlError> Validate()
        {
            foreach (var definition in operation.Variables)
            {
                if (!IsInputType(definition.Type.NamedType))
                {
                    _errors.Add(new GqlError($"{definition.Type.NamedType} isn't a defined input type (on ${definition.Name})", definition.Line, definition.Column,
                        new JsonObject { ["code"] = "variableRequiresValidType", ["typeName"] = definition.Type.NamedType, ["variableName"] = definition.Name }));
                }
            }
            foreach (var directive in operation.Directives)
            {
                _errors.Add(UnknownDirective(directive));
            }
            ObjectType root;
            switch (operation.Kind)
            {
                case "query":
                    root = schema.Query;
                    break;
                case "mutation":
                    root = schema.Mutation;
                    break;
                default:
                    _errors.Add(new GqlError($"Schema is not configured for {operation.Kind}s", operation.Line, operation.Column));
                    return _errors;
            }
            ValidateSelections(root, operation.Selections, isRoot: true);
            foreach (var definition in operation.Variables)
            {
                if (!_used.Contains(definition.Name))
                {
                    _errors.Add(new GqlError($"Variable ${definition.Name} is declared by {OperationLabel} but not used", definition.Line, definition.Column,
                        new JsonObject { ["code"] = "variableNotUsed", ["variableName"] = definition.Name }));
                }
            }
            return _errors;
        }

        private void ValidateSelections(ObjectType type, IReadOnlyList<GqlField> selections, bool isRoot)
        {
            foreach (var field in selections)
            {
                if (field.Name == "__typename")
                {
                    if (field.Selections is not null)
                    {
                        _errors.Add(new GqlError($"Selections can't be made on scalars (field '__typename' returns String but has selections [{string.Join(", ", field.Selections.Select(s => s.Name))}])", field.Line, field.Column));
                    }
                    continue;
                }
                if (!type.Fields.TryGetValue(field.Name, out var definition))
                {
                    _errors.Add(new GqlError($"Field '{field.Name}' doesn't exist on type '{type.Name}'", field.Line, field.Column,
                        new JsonObject { ["code"] = "undefinedField", ["typeName"] = type.Name, ["fieldName"] = field.Name }));
                    continue;
                }
                foreach (var directive in field.Directives)
                {
                    if (directive.Name == "idempotent" && isRoot && type == schema.Mutation && schema.Dialect != Dialect.CompareQuantity)
                    {
                        ValidateIdempotent(directive);
                    }
                    else
                    {
                        _errors.Add(UnknownDirective(directive));
                    }
                }
                ValidateArguments(field, definition);
                var named = definition.Type.NamedType;
                if (Schema.IsScalar(named))
                {
                    if (field.Selections is not null)
                    {
                        _errors.Add(new GqlError($"Selections can't be made on scalars (field '{field.Name}' returns {named} but has selections [{string.Join(", ", field.Selections.Select(s => s.Name))}])", field.Line, field.Column,
                            new JsonObject { ["code"] = "selectionMismatch", ["nodeName"] = $"field '{field.Name}'", ["typeName"] = named }));
                    }
                    continue;
                }
                if (field.Selections is null)
                {
                    _errors.Add(new GqlError($"Field must have selections (field '{field.Name}' returns {named} but has no selections. Did you mean '{field.Name} {{ ... }}'?)", field.Line, field.Column,
                        new JsonObject { ["code"] = "selectionMismatch", ["nodeName"] = $"field '{field.Name}'", ["typeName"] = named }));
                    continue;
                }
                ValidateSelections(schema.Objects[named], field.Selections, isRoot: false);
            }
        }

        private void ValidateIdempotent(GqlDirective directive)
        {
            var key = directive.Arguments.FirstOrDefault(a => a.Name == "key");
            foreach (var argument in directive.Arguments.Where(a => a.Name != "key"))
            {
                _errors.Add(new GqlError($"Directive 'idempotent' doesn't accept argument '{argument.Name}'", directive.Line, directive.Column,
                    new JsonObject { ["code"] = "argumentNotAccepted", ["name"] = "idempotent", ["typeName"] = "Directive", ["argumentName"] = argument.Name }));
            }
            if (key is null)
            {
                _errors.Add(new GqlError("Directive 'idempotent' is missing required arguments: key", directive.Line, directive.Column,
                    new JsonObject { ["code"] = "missingRequiredArguments", ["className"] = "Directive", ["name"] = "idempotent", ["arguments"] = "key" }));
                return;
            }
            CheckArgumentValue(key.Value, TypeRef.Parse("String!"), "idempotent", "key", directive.Line, directive.Column);
        }

        private void ValidateArguments(GqlField field, FieldDef definition)
        {
            foreach (var argument in field.Arguments)
            {
                if (!definition.Arguments.TryGetValue(argument.Name, out var expected))
                {
                    _errors.Add(new GqlError($"Field '{field.Name}' doesn't accept argument '{argument.Name}'", field.Line, field.Column,
                        new JsonObject { ["code"] = "argumentNotAccepted", ["name"] = field.Name, ["typeName"] = "Field", ["argumentName"] = argument.Name }));
                    continue;
                }
                CheckArgumentValue(argument.Value, expected, field.Name, argument.Name, field.Line, field.Column);
            }
            var missing = definition.Arguments.Where(a => a.Value.NonNull && field.Arguments.All(g => g.Name != a.Key)).Select(a => a.Key).ToList();
            if (missing.Count > 0)
            {
                _errors.Add(new GqlError($"Field '{field.Name}' is missing required arguments: {string.Join(", ", missing)}", field.Line, field.Column,
                    new JsonObject { ["code"] = "missingRequiredArguments", ["className"] = "Field", ["name"] = field.Name, ["arguments"] = string.Join(", ", missing) }));
            }
        }

        private void CheckArgumentValue(GqlValue value, TypeRef expected, string owner, string argumentName, int line, int column)
        {
            foreach (var variable in value.Variables())
            {
                _used.Add(variable);
            }
            if (value is GqlVariable reference)
            {
                var declared = operation.Variables.FirstOrDefault(v => v.Name == reference.Name);
                if (declared is null)
                {
                    _errors.Add(new GqlError($"Variable ${reference.Name} is used by {OperationLabel} but not declared", line, column,
                        new JsonObject { ["code"] = "variableNotDefined", ["variableName"] = reference.Name }));
                }
                else if (!Compatible(declared.Type, expected, declared.Default is not null))
                {
                    _errors.Add(new GqlError($"Type mismatch on variable ${reference.Name} and argument {argumentName} ({declared.Type} / {expected})", line, column,
                        new JsonObject { ["code"] = "variableMismatch", ["variableName"] = reference.Name, ["typeName"] = declared.Type.ToString(), ["argumentName"] = argumentName, ["errorMessage"] = "Type mismatch" }));
                }
                return;
            }
            if (value.Variables().Any(v => operation.Variables.All(d => d.Name != v)))
            {
                foreach (var undeclared in value.Variables().Where(v => operation.Variables.All(d => d.Name != v)))
                {
                    _errors.Add(new GqlError($"Variable ${undeclared} is used by {OperationLabel} but not declared", line, column,
                        new JsonObject { ["code"] = "variableNotDefined", ["variableName"] = undeclared }));
                }
                return;
            }
            if (value.Variables().Any())
            {
                // Literals holding variables are checked once the variables are known.
                return;
            }
            var problems = new List<(JsonArray Path, string Explanation)>();
            var tooLong = new List<int>();
            Coerce(value.ToJson(new JsonObject()), expected, [], problems, tooLong);
            if (problems.Count > 0 || tooLong.Count > 0)
            {
                _errors.Add(new GqlError($"Argument '{argumentName}' on {(owner == "idempotent" ? "Directive" : "Field")} '{owner}' has an invalid value ({value.ToJson(new JsonObject())?.ToJsonString() ?? "null"}). Expected type '{expected}'.", line, column,
                    new JsonObject { ["code"] = "argumentLiteralsIncompatible", ["typeName"] = "Field", ["argumentName"] = argumentName }));
            }
        }

        /// <summary>A variable of type <paramref name="declared"/> may stand where <paramref name="expected"/> is required.</summary>
        private static bool Compatible(TypeRef declared, TypeRef expected, bool hasDefault)
        {
            if (expected.NonNull && !declared.NonNull && !hasDefault)
            {
                return false;
            }
            var d = declared with { NonNull = false };
            var e = expected with { NonNull = false };
            if (d.OfList is not null || e.OfList is not null)
            {
                return d.OfList is not null && e.OfList is not null && Compatible(d.OfList, e.OfList, false);
            }
            return d.Name == e.Name || (d.Name == "ID" && e.Name == "String") || (d.Name == "String" && e.Name == "ID");
        }

        private bool IsInputType(string name) => Schema.IsScalar(name) || schema.Inputs.ContainsKey(name);

        private static GqlError UnknownDirective(GqlDirective directive) =>
            new($"Directive @{directive.Name} is not defined", directive.Line, directive.Column,
                new JsonObject { ["code"] = "undefinedDirective", ["directiveName"] = directive.Name });

        /// <summary>Coerces the request's variables against their declared types, collecting Shopify's INVALID_VARIABLE errors.</summary>
        public JsonObject CoerceVariables(JsonObject provided, out List<GqlError> errors)
        {
            errors = [];
            var coerced = new JsonObject();
            foreach (var definition in operation.Variables)
            {
                var present = provided.TryGetPropertyValue(definition.Name, out var value);
                if (!present && definition.Default is not null)
                {
                    value = definition.Default.ToJson(new JsonObject());
                    present = true;
                }
                var problems = new List<(JsonArray Path, string Explanation)>();
                var tooLong = new List<int>();
                Coerce(present ? value : null, definition.Type, [], problems, tooLong);
                foreach (var length in tooLong)
                {
                    errors.Add(new GqlError($"The input array size of {length} is greater than the maximum allowed of {InputArrayMax}.", definition.Line, definition.Column,
                        new JsonObject { ["code"] = "MAX_INPUT_SIZE_EXCEEDED" }));
                }
                if (problems.Count > 0)
                {
                    var where = string.Join(", ", problems.Select(p => p.Path.Count == 0
                        ? p.Explanation
                        : $"{string.Join('.', p.Path.Select(s => s!.ToString()))} ({p.Explanation})"));
                    var message = problems.All(p => p.Path.Count == 0)
                        ? $"Variable ${definition.Name} of type {definition.Type} was provided invalid value"
                        : $"Variable ${definition.Name} of type {definition.Type} was provided invalid value for {where}";
                    errors.Add(new GqlError(message, definition.Line, definition.Column, new JsonObject
                    {
                        ["code"] = "INVALID_VARIABLE",
                        ["value"] = value?.DeepClone(),
                        ["problems"] = new JsonArray([.. problems.Select(p => (JsonNode)new JsonObject { ["path"] = p.Path.DeepClone(), ["explanation"] = p.Explanation })]),
                    }));
                }
                if (present)
                {
                    coerced[definition.Name] = value?.DeepClone();
                }
            }
            return coerced;
        }

        private void Coerce(JsonNode? value, TypeRef type, JsonArray path, List<(JsonArray, string)> problems, List<int> tooLong)
        {
            if (value is null)
            {
                if (type.NonNull)
                {
                    problems.Add((path, "Expected value to not be null"));
                }
                return;
            }
            if (type.OfList is not null)
            {
                if (value is JsonArray array)
                {
                    if (array.Count > InputArrayMax)
                    {
                        tooLong.Add(array.Count);
                        return;
                    }
                    for (var i = 0; i < array.Count; i++)
                    {
                        Coerce(array[i], type.OfList, [.. path.Select(p => p?.DeepClone()), i], problems, tooLong);
                    }
                }
                else
                {
                    // GraphQL coerces a single value where a list is expected into a list of one.
                    Coerce(value, type.OfList, path, problems, tooLong);
                }
                return;
            }
            var name = type.Name!;
            if (schema.Inputs.TryGetValue(name, out var fields))
            {
                if (value is not JsonObject obj)
                {
                    problems.Add((path, $"Expected \"{value.ToJsonString()}\" to be a key-value object."));
                    return;
                }
                foreach (var (key, child) in obj)
                {
                    if (!fields.TryGetValue(key, out var fieldType))
                    {
                        problems.Add(([.. path.Select(p => p?.DeepClone()), key], $"Field is not defined on {name}"));
                        continue;
                    }
                    Coerce(child, fieldType, [.. path.Select(p => p?.DeepClone()), key], problems, tooLong);
                }
                foreach (var (key, fieldType) in fields)
                {
                    if (fieldType.NonNull && !obj.ContainsKey(key))
                    {
                        problems.Add(([.. path.Select(p => p?.DeepClone()), key], "Expected value to not be null"));
                    }
                }
                return;
            }
            var number = Number(value);
            var kind = value.GetValueKind();
            var ok = name switch
            {
                "Int" => number is { } d && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue,
                "Float" => number is not null,
                "Boolean" => kind is JsonValueKind.True or JsonValueKind.False,
                "String" => kind == JsonValueKind.String,
                "ID" => kind == JsonValueKind.String || (number is { } n && n == Math.Floor(n)),
                _ => false,
            };
            if (!ok)
            {
                problems.Add((path, $"Could not coerce value {value.ToJsonString()} to {name}"));
            }
        }

        /// <summary>Problems of a value against an input type (used for literals that embed variables, once those are known).</summary>
        public List<string> Problems(JsonNode? value, TypeRef type)
        {
            var problems = new List<(JsonArray Path, string Explanation)>();
            var tooLong = new List<int>();
            Coerce(value, type, [], problems, tooLong);
            return [.. problems.Select(p => p.Path.Count == 0 ? p.Explanation : $"{string.Join('.', p.Path.Select(s => s!.ToString()))} ({p.Explanation})"),
                .. tooLong.Select(length => $"The input array size of {length} is greater than the maximum allowed of {InputArrayMax}.")];
        }

        /// <summary>The field's arguments with variables substituted (the document is already valid).</summary>
        public static JsonObject Arguments(GqlField field, FieldDef definition, JsonObject variables)
        {
            var arguments = new JsonObject();
            foreach (var argument in field.Arguments)
            {
                if (definition.Arguments.ContainsKey(argument.Name))
                {
                    arguments[argument.Name] = argument.Value.ToJson(variables);
                }
            }
            return arguments;
        }
    }

    /// <summary>Runs a validated operation against the emulator's state (under its lock), counting the actual cost.</summary>
    private sealed class Execution(ShopifyEmulator emulator, Schema schema, Dialect dialect, JsonObject variables)
    {
        private bool _counting;
        private Validator? _validator;

        public List<GqlError> Errors { get; } = [];

        public double ActualCost { get; private set; }

        public JsonObject Run(GqlOperation operation)
        {
            var root = operation.Kind == "mutation" ? schema.Mutation : schema.Query;
            if (operation.Kind == "mutation")
            {
                // A mutation costs its flat price, whatever its payload holds.
                ActualCost += MutationCost * operation.Selections.Count(s => s.Name != "__typename");
            }
            _counting = operation.Kind != "mutation";
            _validator = new Validator(schema, operation);
            return Complete(root, null, operation.Selections, []);
        }

        /// <summary>
        /// Completes an object's selections, counting the actual cost the way the requested cost
        /// is estimated: a connection 2, an object 1, each node of a list 1 (edges themselves 0).
        /// </summary>
        private JsonObject Complete(ObjectType type, object? source, IReadOnlyList<GqlField> selections, JsonArray path)
        {
            var result = new JsonObject();
            foreach (var field in selections)
            {
                var key = field.Alias ?? field.Name;
                if (field.Name == "__typename")
                {
                    result[key] = type.Name;
                    continue;
                }
                var definition = type.Fields[field.Name];
                var arguments = Validator.Arguments(field, definition, variables);
                var fieldPath = new JsonArray([.. path.Select(p => p?.DeepClone()), key]);
                object? value;
                try
                {
                    CheckEmbeddedVariables(field, definition, arguments);
                    value = Resolve(type.Name, field, source, arguments);
                }
                catch (FieldException e)
                {
                    Errors.Add(new GqlError(e.Message, field.Line, field.Column, e.Code is null ? null : new JsonObject { ["code"] = e.Code }, fieldPath));
                    result[key] = null;
                    continue;
                }
                var named = definition.Type.NamedType;
                if (_counting && value is not null && definition.Type.OfList is null && !Schema.IsScalar(named))
                {
                    ActualCost += named.EndsWith("Connection", StringComparison.Ordinal) ? 2 : 1;
                }
                result[key] = CompleteValue(definition.Type, field, value, fieldPath, inList: false);
            }
            return result;
        }

        private JsonNode? CompleteValue(TypeRef type, GqlField field, object? value, JsonArray path, bool inList)
        {
            if (value is null)
            {
                return null;
            }
            if (type.OfList is not null)
            {
                var list = new JsonArray();
                var index = 0;
                foreach (var element in (System.Collections.IEnumerable)value)
                {
                    list.Add(CompleteValue(type.OfList, field, element, [.. path.Select(p => p?.DeepClone()), index++], inList: true));
                }
                return list;
            }
            var named = type.Name!;
            if (Schema.IsScalar(named))
            {
                return value switch
                {
                    string s => s,
                    long l => l,
                    int i => i,
                    bool b => b,
                    string[] strings => new JsonArray([.. strings.Select(s => (JsonNode)s)]),
                    _ => JsonValue.Create(value.ToString()),
                };
            }
            if (_counting && inList && !named.EndsWith("Edge", StringComparison.Ordinal))
            {
                ActualCost += 1;
            }
            return Complete(schema.Objects[named], value, field.Selections ?? [], path);
        }

        private object? Resolve(string typeName, GqlField field, object? source, JsonObject arguments)
        {
            switch (typeName, field.Name, source)
            {
                case ("QueryRoot", "inventoryItems", _):
                    RequirePage(field.Name, arguments);
                    return emulator.SearchItems(arguments);
                case ("QueryRoot", "locations", _):
                    RequirePage(field.Name, arguments);
                    return emulator.SearchLocations(arguments);
                case ("QueryRoot", "inventoryItem", _):
                    return emulator._itemsById.GetValueOrDefault(Text(arguments["id"]) ?? "") is { } found && !emulator.Faults.IsBroken(found.Sku) ? found : null;
                case ("QueryRoot", "location", _):
                    return Text(arguments["id"]) is { } id
                        ? emulator._locations.FirstOrDefault(l => l.Id == id)
                        : emulator._locations.FirstOrDefault();
                case ("Mutation", "inventorySetQuantities", _):
                    return SetQuantities(field, arguments);

                case (_, "nodes", ConnectionPage<Item> page):
                    return page.Items;
                case (_, "nodes", ConnectionPage<Location> page):
                    return page.Items;
                case (_, "edges", ConnectionPage<Item> page):
                    return page.Items.Select((item, i) => (object)(item, page.Cursor(i))).ToList();
                case (_, "edges", ConnectionPage<Location> page):
                    return page.Items.Select((location, i) => (object)(location, page.Cursor(i))).ToList();
                case (_, "pageInfo", var page):
                    return page;
                case ("PageInfo", _, ConnectionPage<Item> page):
                    return PageInfo(field.Name, page.HasNextPage, page.HasPreviousPage, page.Items.Count, page.Cursor);
                case ("PageInfo", _, ConnectionPage<Location> page):
                    return PageInfo(field.Name, page.HasNextPage, page.HasPreviousPage, page.Items.Count, page.Cursor);
                case (_, "node", ValueTuple<Item, string> edge):
                    return edge.Item1;
                case (_, "node", ValueTuple<Location, string> edge):
                    return edge.Item1;
                case (_, "cursor", ValueTuple<Item, string> edge):
                    return edge.Item2;
                case (_, "cursor", ValueTuple<Location, string> edge):
                    return edge.Item2;

                case ("InventoryItem", "id", Item item):
                    return item.Id;
                case ("InventoryItem", "legacyResourceId", Item item):
                    return item.Id[(item.Id.LastIndexOf('/') + 1)..];
                case ("InventoryItem", "sku", Item item):
                    return item.Sku;
                case ("InventoryItem", "tracked", Item item):
                    return item.Tracked;
                case ("InventoryItem", "inventoryLevel", Item item):
                    var locationId = Text(arguments["locationId"]) ?? "";
                    return item.Levels.TryGetValue(locationId, out var level) ? (object)(item, locationId, level) : null;

                case ("InventoryLevel", "id", ValueTuple<Item, string, Level> l):
                    return $"gid://shopify/InventoryLevel/{l.Item1.Id[(l.Item1.Id.LastIndexOf('/') + 1)..]}?inventory_item_id={l.Item2[(l.Item2.LastIndexOf('/') + 1)..]}";
                case ("InventoryLevel", "item", ValueTuple<Item, string, Level> l):
                    return l.Item1;
                case ("InventoryLevel", "location", ValueTuple<Item, string, Level> l):
                    return emulator._locations.First(x => x.Id == l.Item2);
                case ("InventoryLevel", "quantities", ValueTuple<Item, string, Level> l):
                    var names = arguments["names"] is JsonArray array ? array.Select(n => Text(n) ?? "") : [Text(arguments["names"]) ?? ""];
                    return names.Select(n => (object)(n, n switch
                    {
                        "available" => l.Item3.Available,
                        "on_hand" => l.Item3.OnHand,
                        _ => 0L,
                    })).ToList();
                case ("InventoryQuantity", "name", ValueTuple<string, long> q):
                    return q.Item1;
                case ("InventoryQuantity", "quantity", ValueTuple<string, long> q):
                    return q.Item2;

                case ("Location", "id", Location location):
                    return location.Id;
                case ("Location", "name", Location location):
                    return location.Name;
                case ("Location", "isActive", Location location):
                    return location.IsActive;
                case ("Location", "legacyResourceId", Location location):
                    return location.Id[(location.Id.LastIndexOf('/') + 1)..];

                case ("InventorySetQuantitiesPayload", "inventoryAdjustmentGroup", SetResult result):
                    return result.Group is null ? null : (object)result;
                case ("InventorySetQuantitiesPayload", "userErrors", SetResult result):
                    return result.Errors;
                case ("InventoryAdjustmentGroup", "id", SetResult result):
                    return result.Group;
                case ("InventoryAdjustmentGroup", "reason", SetResult result):
                    return result.Reason;
                case ("InventorySetQuantitiesUserError", "code", UserError error):
                    return error.Code;
                case ("InventorySetQuantitiesUserError", "field", UserError error):
                    return error.Field;
                case ("InventorySetQuantitiesUserError", "message", UserError error):
                    return error.Message;
                default:
                    return null;
            }
        }

        private void CheckEmbeddedVariables(GqlField field, FieldDef definition, JsonObject arguments)
        {
            foreach (var argument in field.Arguments)
            {
                if (argument.Value is not GqlVariable && argument.Value.Variables().Any()
                    && _validator!.Problems(arguments[argument.Name], definition.Arguments[argument.Name]) is { Count: > 0 } problems)
                {
                    throw new FieldException($"Argument '{argument.Name}' on Field '{field.Name}' has an invalid value: {string.Join(", ", problems)}. Expected type '{definition.Arguments[argument.Name]}'.", "argumentLiteralsIncompatible");
                }
            }
        }

        private static object? PageInfo(string field, bool hasNext, bool hasPrevious, int count, Func<int, string> cursor) => field switch
        {
            "hasNextPage" => hasNext,
            "hasPreviousPage" => hasPrevious,
            "startCursor" => count > 0 ? cursor(0) : null,
            "endCursor" => count > 0 ? cursor(count - 1) : null,
            _ => null,
        };

        private static void RequirePage(string field, JsonObject arguments)
        {
            var first = Number(arguments["first"]);
            var last = Number(arguments["last"]);
            if (first is null && last is null)
            {
                throw new FieldException($"you must provide one of first or last", null);
            }
            if ((first ?? last) is > ConnectionPageMax or < 0)
            {
                throw new FieldException($"The '{(first is not null ? "first" : "last")}' argument of '{field}' must be between 0 and {ConnectionPageMax}.", "BAD_REQUEST");
            }
        }

        private SetResult SetQuantities(GqlField field, JsonObject arguments)
        {
            string? key = null;
            var directive = field.Directives.FirstOrDefault(d => d.Name == "idempotent");
            if (directive is not null)
            {
                key = Text(directive.Arguments.First(a => a.Name == "key").Value.ToJson(variables));
            }
            if (key is null && dialect == Dialect.ChangeFromRequired)
            {
                throw new FieldException("An idempotency key is required for this mutation: add @idempotent(key: \"...\") to inventorySetQuantities.", "BAD_REQUEST");
            }
            return emulator.SetQuantities(dialect, arguments["input"]!.AsObject(), key);
        }
    }

    private sealed class FieldException(string message, string? code) : Exception(message)
    {
        public string? Code { get; } = code;
    }

    /// <summary>A GraphQL error as Shopify answers it.</summary>
    private sealed record GqlError(string Message, int Line = 0, int Column = 0, JsonObject? Extensions = null, JsonArray? Path = null)
    {
        public JsonObject ToJson()
        {
            var error = new JsonObject { ["message"] = Message };
            if (Line > 0)
            {
                error["locations"] = new JsonArray(new JsonObject { ["line"] = Line, ["column"] = Column });
            }
            if (Path is not null)
            {
                error["path"] = Path.DeepClone();
            }
            if (Extensions is not null)
            {
                error["extensions"] = Extensions.DeepClone();
            }
            return error;
        }
    }

    // ---------------------------------------------------------------- GraphQL syntax

    private sealed record GqlDocument(List<GqlOperation> Operations);

    private sealed record GqlOperation(string Kind, string? Name, List<GqlVariableDefinition> Variables, List<GqlDirective> Directives, List<GqlField> Selections, int Line, int Column);

    private sealed record GqlVariableDefinition(string Name, TypeRef Type, GqlValue? Default, int Line, int Column);

    private sealed record GqlField(string? Alias, string Name, List<GqlArgument> Arguments, List<GqlDirective> Directives, List<GqlField>? Selections, int Line, int Column);

    private sealed record GqlArgument(string Name, GqlValue Value);

    private sealed record GqlDirective(string Name, List<GqlArgument> Arguments, int Line, int Column);

    private abstract record GqlValue
    {
        public abstract JsonNode? ToJson(JsonObject variables);

        public virtual IEnumerable<string> Variables() => [];
    }

    private sealed record GqlVariable(string Name) : GqlValue
    {
        public override JsonNode? ToJson(JsonObject variables) => variables[Name]?.DeepClone();

        public override IEnumerable<string> Variables() => [Name];
    }

    private sealed record GqlLiteral(JsonNode? Value) : GqlValue
    {
        public override JsonNode? ToJson(JsonObject variables) => Value?.DeepClone();
    }

    private sealed record GqlList(List<GqlValue> Items) : GqlValue
    {
        public override JsonNode? ToJson(JsonObject variables) => new JsonArray([.. Items.Select(i => i.ToJson(variables))]);

        public override IEnumerable<string> Variables() => Items.SelectMany(i => i.Variables());
    }

    private sealed record GqlObject(List<GqlArgument> Fields) : GqlValue
    {
        public override JsonNode? ToJson(JsonObject variables)
        {
            var result = new JsonObject();
            foreach (var field in Fields)
            {
                result[field.Name] = field.Value.ToJson(variables);
            }
            return result;
        }

        public override IEnumerable<string> Variables() => Fields.SelectMany(f => f.Value.Variables());
    }

    private sealed class GqlSyntaxException(string message, int line, int column) : Exception(message)
    {
        public int Line { get; } = line;

        public int Column { get; } = column;
    }

    /// <summary>
    /// A recursive-descent parser for GraphQL executable documents (October 2021 spec): operations
    /// with variables and directives, fields with aliases, arguments and nested selections, and all
    /// value literals. Fragments are refused (the connector sends none).
    /// </summary>
    private sealed class GqlParser
    {
        private readonly string _text;
        private int _position;
        private int _line = 1;
        private int _lineStart;
        private Token _token;

        private GqlParser(string text)
        {
            _text = text;
            _token = Next();
        }

        private enum Kind
        {
            End,
            Punctuator,
            Name,
            Int,
            Float,
            String,
        }

        private readonly record struct Token(Kind Kind, string Text, int Line, int Column);

        public static GqlDocument Parse(string text)
        {
            var parser = new GqlParser(text);
            var operations = new List<GqlOperation>();
            do
            {
                operations.Add(parser.Operation());
            }
            while (parser._token.Kind != Kind.End);
            return new GqlDocument(operations);
        }

        private GqlOperation Operation()
        {
            var start = _token;
            if (Peek("{"))
            {
                return new GqlOperation("query", null, [], [], SelectionSet(), start.Line, start.Column);
            }
            if (_token.Kind == Kind.Name && _token.Text == "fragment")
            {
                throw Error("Fragments are not supported by this emulator");
            }
            if (_token.Kind != Kind.Name || _token.Text is not ("query" or "mutation" or "subscription"))
            {
                throw Unexpected();
            }
            var kind = Advance().Text;
            string? name = _token.Kind == Kind.Name ? Advance().Text : null;
            var variables = new List<GqlVariableDefinition>();
            if (Skip("("))
            {
                do
                {
                    var at = _token;
                    Expect("$");
                    var variable = Name();
                    Expect(":");
                    var type = Type();
                    GqlValue? fallback = Skip("=") ? Value(constant: true) : null;
                    variables.Add(new GqlVariableDefinition(variable, type, fallback, at.Line, at.Column));
                }
                while (!Skip(")"));
            }
            var directives = Directives();
            return new GqlOperation(kind, name, variables, directives, SelectionSet(), start.Line, start.Column);
        }

        private List<GqlField> SelectionSet()
        {
            Expect("{");
            var fields = new List<GqlField>();
            do
            {
                if (Peek("..."))
                {
                    throw Error("Fragments are not supported by this emulator");
                }
                fields.Add(Field());
            }
            while (!Skip("}"));
            return fields;
        }

        private GqlField Field()
        {
            var start = _token;
            var name = Name();
            string? alias = null;
            if (Skip(":"))
            {
                alias = name;
                name = Name();
            }
            var arguments = Peek("(") ? Arguments(constant: false) : [];
            var directives = Directives();
            var selections = Peek("{") ? SelectionSet() : null;
            return new GqlField(alias, name, arguments, directives, selections, start.Line, start.Column);
        }

        private List<GqlArgument> Arguments(bool constant)
        {
            Expect("(");
            var arguments = new List<GqlArgument>();
            do
            {
                var name = Name();
                Expect(":");
                arguments.Add(new GqlArgument(name, Value(constant)));
            }
            while (!Skip(")"));
            return arguments;
        }

        private List<GqlDirective> Directives()
        {
            var directives = new List<GqlDirective>();
            while (Peek("@"))
            {
                var at = Advance();
                var name = Name();
                directives.Add(new GqlDirective(name, Peek("(") ? Arguments(constant: false) : [], at.Line, at.Column));
            }
            return directives;
        }

        private TypeRef Type()
        {
            TypeRef type;
            if (Skip("["))
            {
                var item = Type();
                Expect("]");
                type = new TypeRef(null, item, false);
            }
            else
            {
                type = new TypeRef(Name(), null, false);
            }
            return Skip("!") ? type with { NonNull = true } : type;
        }

        private GqlValue Value(bool constant)
        {
            var token = _token;
            switch (token.Kind)
            {
                case Kind.Punctuator when token.Text == "$":
                    if (constant)
                    {
                        throw Unexpected();
                    }
                    Advance();
                    return new GqlVariable(Name());
                case Kind.Punctuator when token.Text == "[":
                    Advance();
                    var items = new List<GqlValue>();
                    while (!Skip("]"))
                    {
                        items.Add(Value(constant));
                    }
                    return new GqlList(items);
                case Kind.Punctuator when token.Text == "{":
                    Advance();
                    var fields = new List<GqlArgument>();
                    while (!Skip("}"))
                    {
                        var name = Name();
                        Expect(":");
                        fields.Add(new GqlArgument(name, Value(constant)));
                    }
                    return new GqlObject(fields);
                case Kind.Int:
                    Advance();
                    return new GqlLiteral(long.TryParse(token.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer)
                        ? JsonValue.Create(integer)
                        : JsonValue.Create(double.Parse(token.Text, NumberStyles.Float, CultureInfo.InvariantCulture)));
                case Kind.Float:
                    Advance();
                    return new GqlLiteral(JsonValue.Create(double.Parse(token.Text, NumberStyles.Float, CultureInfo.InvariantCulture)));
                case Kind.String:
                    Advance();
                    return new GqlLiteral(JsonValue.Create(token.Text));
                case Kind.Name:
                    Advance();
                    return token.Text switch
                    {
                        "true" => new GqlLiteral(JsonValue.Create(true)),
                        "false" => new GqlLiteral(JsonValue.Create(false)),
                        "null" => new GqlLiteral(null),
                        // Enum values travel as their names.
                        _ => new GqlLiteral(JsonValue.Create(token.Text)),
                    };
                default:
                    throw Unexpected();
            }
        }

        private string Name()
        {
            if (_token.Kind != Kind.Name)
            {
                throw Unexpected();
            }
            return Advance().Text;
        }

        private void Expect(string punctuator)
        {
            if (!Skip(punctuator))
            {
                throw Unexpected();
            }
        }

        private bool Skip(string punctuator)
        {
            if (Peek(punctuator))
            {
                Advance();
                return true;
            }
            return false;
        }

        private bool Peek(string punctuator) => _token.Kind == Kind.Punctuator && _token.Text == punctuator;

        private Token Advance()
        {
            var current = _token;
            _token = Next();
            return current;
        }

        private GqlSyntaxException Unexpected() => _token.Kind == Kind.End
            ? new GqlSyntaxException($"Unexpected end of document", _token.Line, _token.Column)
            : new GqlSyntaxException($"Parse error on \"{_token.Text}\" ({_token.Kind.ToString().ToUpperInvariant()}) at [{_token.Line}, {_token.Column}]", _token.Line, _token.Column);

        private GqlSyntaxException Error(string message) => new($"{message} at [{_token.Line}, {_token.Column}]", _token.Line, _token.Column);

        private Token Next()
        {
            while (_position < _text.Length)
            {
                var c = _text[_position];
                if (c is ' ' or '\t' or ',' or '\uFEFF')
                {
                    _position++;
                }
                else if (c is '\n' or '\r')
                {
                    _position += c == '\r' && _position + 1 < _text.Length && _text[_position + 1] == '\n' ? 2 : 1;
                    _line++;
                    _lineStart = _position;
                }
                else if (c == '#')
                {
                    while (_position < _text.Length && _text[_position] is not ('\n' or '\r'))
                    {
                        _position++;
                    }
                }
                else
                {
                    break;
                }
            }
            var line = _line;
            var column = _position - _lineStart + 1;
            if (_position >= _text.Length)
            {
                return new Token(Kind.End, "", line, column);
            }
            var start = _position;
            var ch = _text[_position];
            if (ch == '.' && _text.AsSpan(_position).StartsWith("..."))
            {
                _position += 3;
                return new Token(Kind.Punctuator, "...", line, column);
            }
            if ("!$&()=:@[]{}|".Contains(ch, StringComparison.Ordinal))
            {
                _position++;
                return new Token(Kind.Punctuator, ch.ToString(), line, column);
            }
            if (char.IsAsciiLetter(ch) || ch == '_')
            {
                while (_position < _text.Length && (char.IsAsciiLetterOrDigit(_text[_position]) || _text[_position] == '_'))
                {
                    _position++;
                }
                return new Token(Kind.Name, _text[start.._position], line, column);
            }
            if (ch == '-' || char.IsAsciiDigit(ch))
            {
                _position++;
                var isFloat = false;
                while (_position < _text.Length)
                {
                    var d = _text[_position];
                    if (char.IsAsciiDigit(d))
                    {
                        _position++;
                    }
                    else if (d is '.' or 'e' or 'E' || (d is '+' or '-' && _text[_position - 1] is 'e' or 'E'))
                    {
                        isFloat = true;
                        _position++;
                    }
                    else
                    {
                        break;
                    }
                }
                var number = _text[start.._position];
                if (number == "-" || number.EndsWith('.'))
                {
                    throw new GqlSyntaxException($"Parse error on \"{number}\" at [{line}, {column}]", line, column);
                }
                return new Token(isFloat ? Kind.Float : Kind.Int, number, line, column);
            }
            if (ch == '"')
            {
                return ReadString(line, column);
            }
            throw new GqlSyntaxException($"Parse error on \"{ch}\" (UNKNOWN_CHAR) at [{line}, {column}]", line, column);
        }

        private Token ReadString(int line, int column)
        {
            if (_text.AsSpan(_position).StartsWith("\"\"\""))
            {
                var end = _text.IndexOf("\"\"\"", _position + 3, StringComparison.Ordinal);
                if (end < 0)
                {
                    throw new GqlSyntaxException($"Unterminated string at [{line}, {column}]", line, column);
                }
                var block = _text[(_position + 3)..end];
                foreach (var c in block)
                {
                    if (c == '\n')
                    {
                        _line++;
                    }
                }
                _position = end + 3;
                return new Token(Kind.String, block.Replace("\\\"\"\"", "\"\"\"", StringComparison.Ordinal).Trim('\n', '\r'), line, column);
            }
            _position++;
            var value = new StringBuilder();
            while (true)
            {
                if (_position >= _text.Length || _text[_position] is '\n' or '\r')
                {
                    throw new GqlSyntaxException($"Unterminated string at [{line}, {column}]", line, column);
                }
                var c = _text[_position++];
                if (c == '"')
                {
                    return new Token(Kind.String, value.ToString(), line, column);
                }
                if (c != '\\')
                {
                    value.Append(c);
                    continue;
                }
                if (_position >= _text.Length)
                {
                    throw new GqlSyntaxException($"Unterminated string at [{line}, {column}]", line, column);
                }
                var escaped = _text[_position++];
                switch (escaped)
                {
                    case '"' or '\\' or '/':
                        value.Append(escaped);
                        break;
                    case 'b':
                        value.Append('\b');
                        break;
                    case 'f':
                        value.Append('\f');
                        break;
                    case 'n':
                        value.Append('\n');
                        break;
                    case 'r':
                        value.Append('\r');
                        break;
                    case 't':
                        value.Append('\t');
                        break;
                    case 'u' when _position + 4 <= _text.Length
                        && int.TryParse(_text.AsSpan(_position, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code):
                        value.Append((char)code);
                        _position += 4;
                        break;
                    default:
                        throw new GqlSyntaxException($"Bad escape sequence \"\\{escaped}\" at [{line}, {column}]", line, column);
                }
            }
        }
    }
}
