using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Truestock.Connectors.Emulators;

/// <summary>Settings of an <see cref="OdooEmulator"/>.</summary>
public sealed class OdooEmulatorOptions
{
    /// <summary>The only database of the instance.</summary>
    public string Database { get; init; } = "acme";

    /// <summary>The integration user's login.</summary>
    public string Login { get; init; } = "hub@example.com";

    /// <summary>The integration user's password (Odoo takes an API key in its place the same way).</summary>
    public string Password { get; init; } = "emulator-odoo-key";

    /// <summary>Requests allowed per <see cref="RateWindow"/> (the quota a proxy in front of Odoo enforces); null means none.</summary>
    public int? RequestsPerWindow { get; init; }

    /// <summary>The window of the quota (a fixed window; 429 with Retry-After until it ends).</summary>
    public TimeSpan RateWindow { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The clock of the quota.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>A <c>stock.move</c> the emulated Odoo holds.</summary>
/// <param name="Id">The move id.</param>
/// <param name="Name">Its name (for the hub's adjustments, the movement's key).</param>
/// <param name="ProductId">The product.</param>
/// <param name="LocationId">Where the units come from.</param>
/// <param name="LocationDestId">Where they go.</param>
/// <param name="Quantity">Units moved (never negative; the direction is in the locations).</param>
public sealed record OdooMove(long Id, string Name, long ProductId, long LocationId, long LocationDestId, double Quantity);

/// <summary>
/// An in-process stand-in for Odoo's external JSON-RPC API (<c>POST /jsonrpc</c>), implementing what
/// <see cref="Erp.OdooErpConnector"/> uses: <c>common.version</c>, <c>common.login</c>, <c>common.authenticate</c>, and
/// <c>object.execute_kw</c> with <c>search_read</c> and <c>read</c> on <c>product.product</c>, <c>stock.location</c>,
/// <c>stock.quant</c> and <c>stock.move</c> (domains in prefix notation with <c>|</c>, <c>&amp;</c>, <c>!</c> and the
/// operators =, !=, in, not in, =like, like, &lt;, &gt;, &lt;=, &gt;=), <c>create</c> and <c>write</c> of quants in
/// <c>inventory_mode</c>, <c>action_clear_inventory_quantity</c>, and <c>action_apply_inventory</c>, which books a done <c>stock.move</c> against the
/// inventory-adjustment location exactly as Odoo does (named after <c>context.inventory_name</c>, with " (user)" when the
/// quant has a user; answering the conflict wizard when stock moved since the counted quantity was set).
/// </summary>
/// <remarks>
/// Errors are JSON-RPC errors with HTTP 200 and Odoo's exception names (AccessDenied, AccessError, UserError,
/// ValidationError, MissingError, ValueError). Like Odoo, it does not stop a client from booking the same adjustment
/// twice: it counts it in <see cref="DuplicateBookings"/>, which a correct client keeps at 0 by searching for its key
/// first. A proxy quota answers 429 with Retry-After; the instance can be taken down (503 or refused connections),
/// brought back, slowed down, and a SKU can be broken so that adjusting it fails with a UserError.
/// </remarks>
public sealed class OdooEmulator : IAsyncDisposable
{
    /// <summary>The user id of the integration user.</summary>
    public const long IntegrationUid = 2;

    /// <summary>The id of "Virtual Locations/Inventory adjustment".</summary>
    public const long AdjustmentLocationId = 14;

    private const string IntegrationUserName = "Truestock Hub";

    private readonly OdooEmulatorOptions _options;
    private readonly ErpEmulatorControls _controls;
    private readonly Lock _gate = new();
    private readonly Dictionary<long, Product> _products = [];
    private readonly Dictionary<long, Location> _locations = [];
    private readonly Dictionary<long, Quant> _quants = [];
    private readonly List<Move> _moves = [];
    private readonly Dictionary<string, int> _lookupsAfterBooking = new(StringComparer.Ordinal);
    private long _nextId = 100;
    private (string Sku, double Delta)? _interference;
    private long _duplicateBookings;
    private long _keyRepeats;
    private long _calls;

    private OdooEmulator(OdooEmulatorOptions options, ErpEmulatorControls controls)
    {
        _options = options;
        _controls = controls;
        _locations[1] = new Location(1, "Physical Locations", "view");
        _locations[AdjustmentLocationId] = new Location(AdjustmentLocationId, "Virtual Locations/Inventory adjustment", "inventory");
    }

    /// <summary>The instance's base URL (configure it as the connector's <c>Url</c>).</summary>
    public Uri Url => _controls.BaseAddress;

    /// <summary>The configured database.</summary>
    public string Database => _options.Database;

    /// <summary>The integration user's login.</summary>
    public string Login => _options.Login;

    /// <summary>Faults: FailNext answers 500, TimeOutNext hangs, BreakSku makes adjusting that SKU fail with a UserError.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>HTTP requests received (including refused, throttled and failed ones).</summary>
    public long Requests => _controls.Requests;

    /// <summary>JSON-RPC calls handled (past the proxy's quota and outage).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Requests answered 429.</summary>
    public long ThrottledResponses => _controls.ThrottledCount;

    /// <summary>Requests answered 503 while the instance was down.</summary>
    public long UnavailableResponses => _controls.UnavailableCount;

    /// <summary>Adjustments booked under a name an earlier done move already had: the client booked a movement twice.</summary>
    public long DuplicateBookings => Interlocked.Read(ref _duplicateBookings);

    /// <summary>
    /// Searches that found a key already booked, beyond the first one after its booking (which is the client reading
    /// the document id): movements the client sent again and found booked instead of booking them twice.
    /// </summary>
    public long KeyRepeats => Interlocked.Read(ref _keyRepeats);

    /// <summary>Every done move the hub's adjustments booked (moves with an inventory name), in booking order.</summary>
    public IReadOnlyList<OdooMove> Moves
    {
        get
        {
            lock (_gate)
            {
                return _moves.Where(m => m.ByHub).Select(m => new OdooMove(m.Id, m.Name, m.ProductId, m.LocationId, m.LocationDestId, m.Quantity)).ToArray();
            }
        }
    }

    /// <summary>Starts the instance on a free local port.</summary>
    public static async Task<OdooEmulator> StartAsync(OdooEmulatorOptions? options = null)
    {
        options ??= new OdooEmulatorOptions();
        OdooEmulator? emulator = null;
        var controls = await ErpEmulatorControls.StartAsync(app =>
        {
            app.MapPost("/jsonrpc", context => emulator!.ReceiveAsync(context));
        }, options.Time, options.RequestsPerWindow, options.RateWindow).ConfigureAwait(false);
        emulator = new OdooEmulator(options, controls);
        return emulator;
    }

    /// <summary>Creates a product with an Internal Reference; returns its <c>product.product</c> id.</summary>
    public long AddProduct(string defaultCode, bool storable = true)
    {
        lock (_gate)
        {
            var id = ++_nextId;
            _products[id] = new Product(id, defaultCode, storable);
            return id;
        }
    }

    /// <summary>Creates a location (usage <c>internal</c> for stock, <c>view</c> for a parent); returns its id.</summary>
    public long AddLocation(string name, string usage = "internal")
    {
        lock (_gate)
        {
            var id = ++_nextId;
            _locations[id] = new Location(id, name, usage);
            return id;
        }
    }

    /// <summary>The on-hand quantity Odoo holds for a SKU at a location (its quant's quantity).</summary>
    public double QuantityOf(string sku, long locationId)
    {
        lock (_gate)
        {
            var product = _products.Values.FirstOrDefault(p => p.DefaultCode == sku);
            return product is null ? 0 : _quants.Values.Where(q => q.ProductId == product.Id && q.LocationId == locationId).Sum(q => q.Quantity);
        }
    }

    /// <summary>True while the quant of a SKU at a location has a counted quantity set that is not applied yet.</summary>
    public bool HasPendingCount(string sku, long locationId)
    {
        lock (_gate)
        {
            var product = _products.Values.FirstOrDefault(p => p.DefaultCode == sku);
            return product is not null && _quants.Values.Any(q => q.ProductId == product.Id && q.LocationId == locationId && q.InventorySet);
        }
    }

    /// <summary>
    /// Someone in Odoo moves <paramref name="delta"/> units of the SKU at the quant's location just before the next
    /// <c>action_apply_inventory</c> on it, so that Odoo finds the counted quantity outdated (the race the client must survive).
    /// </summary>
    public void MoveStockBeforeNextApply(string sku, double delta)
    {
        lock (_gate)
        {
            _interference = (sku, delta);
        }
    }

    /// <summary>Stock moved by someone in Odoo (a receipt validated by a user): changes the quant without the hub.</summary>
    public void MoveStockInOdoo(string sku, long locationId, double delta)
    {
        lock (_gate)
        {
            var product = _products.Values.First(p => p.DefaultCode == sku);
            var quant = Gather(product.Id, locationId) ?? NewQuant(product.Id, locationId);
            quant.Quantity += delta;
            _moves.Add(new Move(++_nextId, "WH/IN/" + _nextId.ToString(CultureInfo.InvariantCulture), product.Id,
                delta > 0 ? 1 : locationId, delta > 0 ? locationId : 1, Math.Abs(delta), ByHub: false));
        }
    }

    /// <summary>Takes the instance down: 503, or with <paramref name="refuseConnections"/> its port closes.</summary>
    public Task TakeDownAsync(bool refuseConnections = false) => _controls.TakeDownAsync(refuseConnections);

    /// <summary>Brings the instance back on the same address, with its data intact.</summary>
    public Task BringUpAsync() => _controls.BringUpAsync();

    /// <summary>Every request waits this long before it is handled (null: no delay).</summary>
    public void SlowDown(TimeSpan? delay) => _controls.SlowDown(delay);

    /// <summary>The next <paramref name="count"/> requests answer 429 with Retry-After (default 1 s).</summary>
    public void ThrottleNext(int count, TimeSpan? retryAfter = null) => _controls.ThrottleNext(count, retryAfter);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _controls.DisposeAsync();

    // ------------------------------------------------------------------ JSON-RPC

    private async Task ReceiveAsync(HttpContext context)
    {
        if (Faults.TakeTimeout())
        {
            await EmulatorSupport.HangAsync(context.RequestAborted, _controls.Stopping).ConfigureAwait(false);
            return;
        }
        if (Faults.TakeTransientError())
        {
            context.Response.StatusCode = 500;
            context.Response.ContentType = "text/html";
            await context.Response.WriteAsync("<html><body>Internal Server Error</body></html>", context.RequestAborted).ConfigureAwait(false);
            return;
        }
        JsonNode? id = null;
        JsonObject answer;
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("id", out var idValue))
            {
                id = JsonNode.Parse(idValue.GetRawText());
            }
            Interlocked.Increment(ref _calls);
            var result = Dispatch(root);
            answer = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id };
            // Odoo leaves "result" out when the method returned None.
            if (result is not null)
            {
                answer["result"] = result;
            }
        }
        catch (JsonException ex)
        {
            answer = Error(id, new OdooFault("werkzeug.exceptions.BadRequest", "400 Bad Request: Invalid JSON data: " + ex.Message));
        }
        catch (OdooFault fault)
        {
            answer = Error(id, fault);
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(answer.ToJsonString(), context.RequestAborted).ConfigureAwait(false);
    }

    private static JsonObject Error(JsonNode? id, OdooFault fault) => new()
    {
        ["jsonrpc"] = "2.0",
        ["id"] = id?.DeepClone(),
        ["error"] = new JsonObject
        {
            ["code"] = 200,
            ["message"] = "Odoo Server Error",
            ["data"] = new JsonObject
            {
                ["name"] = fault.Name,
                ["debug"] = "Traceback (most recent call last):\n  (emulated)\n" + fault.Name + ": " + fault.Message,
                ["message"] = fault.Message,
                ["arguments"] = new JsonArray(fault.Message),
                ["context"] = new JsonObject(),
            },
        },
    };

    private JsonNode? Dispatch(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("params", out var p) || p.ValueKind != JsonValueKind.Object)
        {
            throw new OdooFault("builtins.TypeError", "jsonrpc() missing 3 required positional arguments: 'service', 'method', and 'args'");
        }
        if (!root.TryGetProperty("jsonrpc", out var version) || version.ValueKind != JsonValueKind.String || version.GetString() != "2.0")
        {
            throw new OdooFault("werkzeug.exceptions.BadRequest", "400 Bad Request: jsonrpc must be \"2.0\"");
        }
        var service = p.TryGetProperty("service", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        var method = p.TryGetProperty("method", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        if (!p.TryGetProperty("args", out var args) || args.ValueKind != JsonValueKind.Array || service is null || method is null)
        {
            throw new OdooFault("builtins.TypeError", "jsonrpc() missing required arguments: 'service', 'method' and 'args' (a list)");
        }
        return service switch
        {
            "common" => Common(method, args),
            "object" when method is "execute_kw" => ExecuteKw(args),
            "object" => throw new OdooFault("odoo.exceptions.UserError", $"Method not available {method}"),
            _ => throw new OdooFault("builtins.KeyError", $"'{service}'"),
        };
    }

    private JsonNode? Common(string method, JsonElement args)
    {
        switch (method)
        {
            case "version":
                return new JsonObject
                {
                    ["server_version"] = "17.0",
                    ["server_version_info"] = new JsonArray(17, 0, 0, "final", 0, ""),
                    ["server_serie"] = "17.0",
                    ["protocol_version"] = 1,
                };
            case "login" or "authenticate":
                if (args.GetArrayLength() < 3 || args.EnumerateArray().Take(3).Any(a => a.ValueKind != JsonValueKind.String))
                {
                    throw new OdooFault("builtins.TypeError", $"{method}() missing required positional arguments: 'db', 'login' and 'password'");
                }
                CheckDatabase(args[0].GetString()!);
                // Odoo answers a refused login with False, not with an error.
                return args[1].GetString() == _options.Login && args[2].GetString() == _options.Password ? JsonValue.Create(IntegrationUid) : JsonValue.Create(false);
            default:
                throw new OdooFault("builtins.AttributeError", $"module 'odoo.service.common' has no attribute 'exp_{method}'");
        }
    }

    private void CheckDatabase(string database)
    {
        if (database != _options.Database)
        {
            throw new OdooFault("psycopg2.OperationalError", $"connection to server failed: FATAL:  database \"{database}\" does not exist");
        }
    }

    private JsonNode? ExecuteKw(JsonElement args)
    {
        if (args.GetArrayLength() < 6)
        {
            throw new OdooFault("builtins.TypeError", "execute_kw() missing required positional arguments: 'db', 'uid', 'passwd', 'model', 'method' and 'args'");
        }
        if (args[0].ValueKind != JsonValueKind.String)
        {
            throw new OdooFault("builtins.TypeError", "db must be a string");
        }
        CheckDatabase(args[0].GetString()!);
        if (!Int(args[1], out var uid) || uid != IntegrationUid || args[2].ValueKind != JsonValueKind.String || args[2].GetString() != _options.Password)
        {
            throw new OdooFault("odoo.exceptions.AccessDenied", "Access Denied");
        }
        var model = args[3].ValueKind == JsonValueKind.String ? args[3].GetString()! : "";
        var method = args[4].ValueKind == JsonValueKind.String ? args[4].GetString()! : "";
        if (method.StartsWith('_'))
        {
            throw new OdooFault("odoo.exceptions.AccessError", $"Private methods (such as {method}) cannot be called remotely.");
        }
        var positional = args[5];
        if (positional.ValueKind != JsonValueKind.Array)
        {
            throw new OdooFault("builtins.TypeError", "args must be a list");
        }
        var kwargs = args.GetArrayLength() > 6 ? args[6] : default;
        if (kwargs.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Object or JsonValueKind.Null))
        {
            throw new OdooFault("builtins.TypeError", "kwargs must be a dict");
        }
        var context = kwargs.ValueKind == JsonValueKind.Object && kwargs.TryGetProperty("context", out var c) && c.ValueKind == JsonValueKind.Object ? c : default;
        if (model is not ("product.product" or "stock.location" or "stock.quant" or "stock.move"))
        {
            throw new OdooFault("odoo.exceptions.UserError", $"Object {model} doesn't exist");
        }
        lock (_gate)
        {
            return (model, method) switch
            {
                (_, "search_read") => SearchRead(model, positional, kwargs),
                (_, "read") => Read(model, positional, kwargs),
                ("stock.quant", "create") => CreateQuant(positional, context),
                ("stock.quant", "write") => WriteQuant(positional, context),
                ("stock.quant", "action_apply_inventory") => ApplyInventory(positional, context),
                ("stock.quant", "action_clear_inventory_quantity") => ClearInventory(positional),
                _ => throw new OdooFault("builtins.AttributeError", $"The method '{method}' does not exist on the model '{model}'"),
            };
        }
    }

    // ------------------------------------------------------------------ models

    private JsonNode SearchRead(string model, JsonElement args, JsonElement kwargs)
    {
        var domain = args.GetArrayLength() > 0 ? args[0]
            : kwargs.ValueKind == JsonValueKind.Object && kwargs.TryGetProperty("domain", out var d) ? d : default;
        var filter = domain.ValueKind == JsonValueKind.Undefined ? (_ => true) : Domain.Parse(domain, model, field => Fields(model).Contains(field));
        var fields = FieldList(model, kwargs);
        var rows = Records(model).Where(filter).OrderBy(r => (long)r["id"]!).AsEnumerable();
        if (kwargs.ValueKind == JsonValueKind.Object && kwargs.TryGetProperty("offset", out var offset) && Int(offset, out var skip) && skip > 0)
        {
            rows = rows.Skip((int)Math.Min(skip, int.MaxValue));
        }
        if (kwargs.ValueKind == JsonValueKind.Object && kwargs.TryGetProperty("limit", out var limit) && Int(limit, out var take) && take > 0)
        {
            rows = rows.Take((int)Math.Min(take, int.MaxValue));
        }
        var list = rows.ToList();
        if (model == "stock.move")
        {
            CountKeyLookups(domain, list);
        }
        return new JsonArray(list.Select(r => (JsonNode?)Serialize(model, r, fields)).ToArray());
    }

    private JsonNode Read(string model, JsonElement args, JsonElement kwargs)
    {
        if (args.GetArrayLength() == 0 || args[0].ValueKind != JsonValueKind.Array)
        {
            throw new OdooFault("builtins.TypeError", "read() missing 1 required positional argument: 'ids'");
        }
        var ids = args[0].EnumerateArray().Select(i => Int(i, out var v) ? v : throw new OdooFault("builtins.ValueError", "ids must be integers")).ToList();
        var fields = args.GetArrayLength() > 1 && args[1].ValueKind == JsonValueKind.Array
            ? args[1].EnumerateArray().Select(f => f.GetString()!).ToList()
            : FieldList(model, kwargs);
        foreach (var f in fields.Where(f => !Fields(model).Contains(f)))
        {
            throw new OdooFault("builtins.ValueError", $"Invalid field '{f}' on model '{model}'");
        }
        var byId = Records(model).ToDictionary(r => (long)r["id"]!);
        var result = new JsonArray();
        foreach (var id in ids)
        {
            if (!byId.TryGetValue(id, out var record))
            {
                throw new OdooFault("odoo.exceptions.MissingError",
                    $"Record does not exist or has been deleted.\n(Record: {model}({id},), User: {IntegrationUid})");
            }
            result.Add(Serialize(model, record, fields));
        }
        return result;
    }

    private static bool InventoryMode(JsonElement context) =>
        context.ValueKind == JsonValueKind.Object && context.TryGetProperty("inventory_mode", out var mode) && mode.ValueKind == JsonValueKind.True;

    private static readonly HashSet<string> QuantCreateFields = new(StringComparer.Ordinal)
    {
        "product_id", "location_id", "lot_id", "package_id", "owner_id", "inventory_quantity", "inventory_quantity_auto_apply",
        "inventory_diff_quantity", "inventory_date", "user_id", "inventory_quantity_set",
    };

    private JsonNode CreateQuant(JsonElement args, JsonElement context)
    {
        if (args.GetArrayLength() == 0 || args[0].ValueKind is not (JsonValueKind.Object or JsonValueKind.Array))
        {
            throw new OdooFault("builtins.TypeError", "create() missing 1 required positional argument: 'vals_list'");
        }
        var single = args[0].ValueKind == JsonValueKind.Object;
        var ids = new JsonArray();
        var items = single ? new[] { args[0] } : args[0].EnumerateArray().ToArray();
        foreach (var vals in items)
        {
            if (vals.ValueKind != JsonValueKind.Object)
            {
                throw new OdooFault("builtins.ValueError", "create() takes dicts of field values");
            }
            if (!InventoryMode(context) || !vals.TryGetProperty("inventory_quantity", out var inventory) || inventory.ValueKind != JsonValueKind.Number)
            {
                // Outside inventory mode a quant can only be made by stock moves.
                throw new OdooFault("odoo.exceptions.UserError", "Quant's creation is restricted, you can't do this operation.");
            }
            if (vals.EnumerateObject().Any(f => !QuantCreateFields.Contains(f.Name)))
            {
                throw new OdooFault("odoo.exceptions.UserError", "Quant's creation is restricted, you can't do this operation.");
            }
            var product = Many2One(vals, "product_id") is { } pid && _products.TryGetValue(pid, out var found) ? found
                : throw new OdooFault("odoo.exceptions.ValidationError", "The operation cannot be completed: a product is required and must exist (product_id).");
            if (!product.Storable)
            {
                throw new OdooFault("odoo.exceptions.ValidationError", "Quants cannot be created for consumables or services.");
            }
            var location = Many2One(vals, "location_id") is { } lid && _locations.TryGetValue(lid, out var loc) ? loc
                : throw new OdooFault("odoo.exceptions.ValidationError", "The operation cannot be completed: a location is required and must exist (location_id).");
            if (location.Usage == "view")
            {
                throw new OdooFault("odoo.exceptions.ValidationError", $"You cannot take products from or deliver products to a location of type \"view\" ({location.Name}).");
            }
            // Like Odoo: the strict quant of (product, location, no lot, no package, no owner) is reused.
            var quant = Gather(product.Id, location.Id) ?? NewQuant(product.Id, location.Id);
            SetInventoryQuantity(quant, inventory.GetDouble());
            quant.UserId = vals.TryGetProperty("user_id", out var user) ? (Int(user, out var u) ? u : null) : IntegrationUid;
            ids.Add(quant.Id);
        }
        return single ? ids[0]!.DeepClone() : ids;
    }

    private JsonNode WriteQuant(JsonElement args, JsonElement context)
    {
        if (args.GetArrayLength() < 2 || args[0].ValueKind != JsonValueKind.Array || args[1].ValueKind != JsonValueKind.Object)
        {
            throw new OdooFault("builtins.TypeError", "write() takes the ids and a dict of values");
        }
        var vals = args[1];
        if (!InventoryMode(context) || vals.EnumerateObject().Any(f => f.Name is "product_id" or "location_id" or "lot_id" or "package_id" or "owner_id"))
        {
            throw new OdooFault("odoo.exceptions.UserError", "Quant's editing is restricted, you can't do this operation.");
        }
        foreach (var f in vals.EnumerateObject().Where(f => !QuantCreateFields.Contains(f.Name)))
        {
            throw new OdooFault("builtins.ValueError", $"Invalid field '{f.Name}' on model 'stock.quant'");
        }
        foreach (var idValue in args[0].EnumerateArray())
        {
            if (!Int(idValue, out var id) || !_quants.TryGetValue(id, out var quant))
            {
                throw new OdooFault("odoo.exceptions.MissingError", "Record does not exist or has been deleted.");
            }
            if (vals.TryGetProperty("inventory_quantity", out var inventory))
            {
                if (inventory.ValueKind != JsonValueKind.Number)
                {
                    throw new OdooFault("builtins.ValueError", "inventory_quantity must be a number");
                }
                SetInventoryQuantity(quant, inventory.GetDouble());
            }
            if (vals.TryGetProperty("user_id", out var user))
            {
                quant.UserId = Int(user, out var u) ? u : null;
            }
        }
        return JsonValue.Create(true);
    }

    private JsonNode? ApplyInventory(JsonElement args, JsonElement context)
    {
        if (args.GetArrayLength() == 0 || args[0].ValueKind != JsonValueKind.Array)
        {
            throw new OdooFault("builtins.TypeError", "action_apply_inventory() needs the ids of the quants");
        }
        var quants = new List<Quant>();
        foreach (var idValue in args[0].EnumerateArray())
        {
            if (!Int(idValue, out var id) || !_quants.TryGetValue(id, out var quant))
            {
                throw new OdooFault("odoo.exceptions.MissingError", "Record does not exist or has been deleted.");
            }
            quants.Add(quant);
        }
        if (_interference is { } external && quants.FirstOrDefault(q => _products[q.ProductId].DefaultCode == external.Sku) is { } touched)
        {
            _interference = null;
            touched.Quantity += external.Delta;
            _moves.Add(new Move(++_nextId, "WH/IN/" + _nextId.ToString(CultureInfo.InvariantCulture), touched.ProductId,
                external.Delta > 0 ? 1 : touched.LocationId, external.Delta > 0 ? touched.LocationId : 1, Math.Abs(external.Delta), ByHub: false));
        }
        if (quants.Any(q => q.Outdated))
        {
            // Odoo answers with its conflict wizard instead of applying anything.
            return new JsonObject
            {
                ["name"] = "Conflict in Inventory Adjustment",
                ["type"] = "ir.actions.act_window",
                ["res_model"] = "stock.inventory.conflict",
                ["target"] = "new",
                ["context"] = new JsonObject { ["default_quant_ids"] = new JsonArray(quants.Select(q => (JsonNode?)q.Id).ToArray()) },
            };
        }
        var inventoryName = context.ValueKind == JsonValueKind.Object && context.TryGetProperty("inventory_name", out var n) && n.ValueKind == JsonValueKind.String
            ? n.GetString() : null;
        foreach (var quant in quants)
        {
            var product = _products[quant.ProductId];
            if (Faults.IsBroken(product.DefaultCode))
            {
                throw new OdooFault("odoo.exceptions.UserError", $"The product '{product.DefaultCode}' is blocked: inventory adjustments are not allowed for it.");
            }
        }
        foreach (var quant in quants)
        {
            var diff = quant.InventoryDiff;
            var name = inventoryName ?? (diff == 0 ? "Product Quantity Confirmed" : "Product Quantity Updated");
            if (quant.UserId is { } user and not 1)
            {
                name += $" ({(user == IntegrationUid ? IntegrationUserName : "User " + user.ToString(CultureInfo.InvariantCulture))})";
            }
            if (inventoryName is not null && _moves.Any(m => m.ByHub && BaseName(m.Name) == inventoryName))
            {
                Interlocked.Increment(ref _duplicateBookings);
            }
            var move = diff > 0
                ? new Move(++_nextId, name, quant.ProductId, AdjustmentLocationId, quant.LocationId, diff, ByHub: inventoryName is not null)
                : new Move(++_nextId, name, quant.ProductId, quant.LocationId, AdjustmentLocationId, -diff, ByHub: inventoryName is not null);
            _moves.Add(move);
            quant.Quantity += diff;
            quant.InventoryQuantity = 0;
            quant.InventoryDiff = 0;
            quant.InventorySet = false;
            quant.UserId = null;
        }
        return null;
    }

    private JsonNode? ClearInventory(JsonElement args)
    {
        if (args.GetArrayLength() == 0 || args[0].ValueKind != JsonValueKind.Array)
        {
            throw new OdooFault("builtins.TypeError", "action_clear_inventory_quantity() needs the ids of the quants");
        }
        foreach (var idValue in args[0].EnumerateArray())
        {
            if (!Int(idValue, out var id) || !_quants.TryGetValue(id, out var quant))
            {
                throw new OdooFault("odoo.exceptions.MissingError", "Record does not exist or has been deleted.");
            }
            quant.InventoryQuantity = 0;
            quant.InventoryDiff = 0;
            quant.InventorySet = false;
            quant.UserId = null;
        }
        return null;
    }

    private static string BaseName(string name)
    {
        var cut = name.IndexOf(" (", StringComparison.Ordinal);
        return cut > 0 ? name[..cut] : name;
    }

    private void CountKeyLookups(JsonElement domain, List<Dictionary<string, object?>> found)
    {
        // Lookups by name of moves the hub booked: the first one after a booking is the client reading the document id,
        // every further one is the client sending a booked movement again.
        if (domain.ValueKind != JsonValueKind.Array || !domain.GetRawText().Contains("\"name\"", StringComparison.Ordinal))
        {
            return;
        }
        foreach (var key in found.Select(r => BaseName((string)r["name"]!)).Distinct(StringComparer.Ordinal))
        {
            var seen = _lookupsAfterBooking.TryGetValue(key, out var count) ? count : 0;
            _lookupsAfterBooking[key] = seen + 1;
            if (seen >= 1)
            {
                Interlocked.Increment(ref _keyRepeats);
            }
        }
    }

    private void SetInventoryQuantity(Quant quant, double inventoryQuantity)
    {
        quant.InventoryQuantity = inventoryQuantity;
        // Stored and computed from inventory_quantity only, as in Odoo: it keeps the difference as of this write.
        quant.InventoryDiff = inventoryQuantity - quant.Quantity;
        quant.InventorySet = true;
    }

    private Quant? Gather(long productId, long locationId) =>
        _quants.Values.FirstOrDefault(q => q.ProductId == productId && q.LocationId == locationId);

    private Quant NewQuant(long productId, long locationId)
    {
        var quant = new Quant(++_nextId, productId, locationId);
        _quants[quant.Id] = quant;
        return quant;
    }

    /// <summary>An integer JSON value (TryGetInt64 throws on anything that is not a number).</summary>
    private static bool Int(JsonElement value, out long number)
    {
        number = 0;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out number);
    }

    private static long? Many2One(JsonElement vals, string field) =>
        vals.TryGetProperty(field, out var v) && Int(v, out var id) ? id : null;

    private static readonly Dictionary<string, string[]> ModelFields = new(StringComparer.Ordinal)
    {
        ["product.product"] = ["id", "default_code", "name", "display_name", "active", "is_storable", "uom_id"],
        ["stock.location"] = ["id", "name", "complete_name", "display_name", "usage", "active"],
        ["stock.quant"] = ["id", "product_id", "location_id", "lot_id", "package_id", "owner_id", "quantity", "reserved_quantity",
            "inventory_quantity", "inventory_diff_quantity", "inventory_quantity_set", "is_outdated", "user_id"],
        ["stock.move"] = ["id", "name", "reference", "product_id", "location_id", "location_dest_id", "product_uom_qty", "quantity",
            "state", "is_inventory"],
    };

    private static readonly HashSet<string> Many2OneFields = new(StringComparer.Ordinal)
    {
        "product_id", "location_id", "location_dest_id", "lot_id", "package_id", "owner_id", "user_id", "uom_id",
    };

    private static string[] Fields(string model) => ModelFields[model];

    private static List<string> FieldList(string model, JsonElement kwargs)
    {
        if (kwargs.ValueKind == JsonValueKind.Object && kwargs.TryGetProperty("fields", out var f) && f.ValueKind == JsonValueKind.Array && f.GetArrayLength() > 0)
        {
            var list = f.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString()! : "").ToList();
            foreach (var name in list.Where(n => !Fields(model).Contains(n)))
            {
                throw new OdooFault("builtins.ValueError", $"Invalid field '{name}' on model '{model}'");
            }
            return list;
        }
        return [.. Fields(model)];
    }

    private IEnumerable<Dictionary<string, object?>> Records(string model) => model switch
    {
        "product.product" => _products.Values.Select(p => new Dictionary<string, object?>
        {
            ["id"] = p.Id, ["default_code"] = p.DefaultCode, ["name"] = p.DefaultCode, ["display_name"] = $"[{p.DefaultCode}] {p.DefaultCode}",
            ["active"] = true, ["is_storable"] = p.Storable, ["uom_id"] = 1L,
        }),
        "stock.location" => _locations.Values.Select(l => new Dictionary<string, object?>
        {
            ["id"] = l.Id, ["name"] = l.Name, ["complete_name"] = l.Name, ["display_name"] = l.Name, ["usage"] = l.Usage, ["active"] = true,
        }),
        "stock.quant" => _quants.Values.Select(q => new Dictionary<string, object?>
        {
            ["id"] = q.Id, ["product_id"] = q.ProductId, ["location_id"] = q.LocationId, ["lot_id"] = null, ["package_id"] = null,
            ["owner_id"] = null, ["quantity"] = q.Quantity, ["reserved_quantity"] = 0.0, ["inventory_quantity"] = q.InventoryQuantity,
            ["inventory_diff_quantity"] = q.InventoryDiff, ["inventory_quantity_set"] = q.InventorySet, ["is_outdated"] = q.Outdated,
            ["user_id"] = q.UserId,
        }),
        _ => _moves.Select(m => new Dictionary<string, object?>
        {
            ["id"] = m.Id, ["name"] = m.Name, ["reference"] = m.Name, ["product_id"] = m.ProductId, ["location_id"] = m.LocationId,
            ["location_dest_id"] = m.LocationDestId, ["product_uom_qty"] = m.Quantity, ["quantity"] = m.Quantity, ["state"] = "done",
            ["is_inventory"] = m.ByHub,
        }),
    };

    private JsonObject Serialize(string model, Dictionary<string, object?> record, List<string> fields)
    {
        var row = new JsonObject { ["id"] = (long)record["id"]! };
        foreach (var field in fields.Where(f => f != "id"))
        {
            var value = record[field];
            row[field] = value switch
            {
                null => JsonValue.Create(false),
                long id when Many2OneFields.Contains(field) => new JsonArray(id, DisplayName(field, id)),
                long l => JsonValue.Create(l),
                double d => JsonValue.Create(d),
                bool b => JsonValue.Create(b),
                string s => JsonValue.Create(s),
                _ => throw new InvalidOperationException($"The emulator cannot serialise {model}.{field}."),
            };
        }
        return row;
    }

    private string DisplayName(string field, long id) => field switch
    {
        "product_id" => _products.TryGetValue(id, out var p) ? p.DefaultCode : "",
        "location_id" or "location_dest_id" => _locations.TryGetValue(id, out var l) ? l.Name : "",
        "uom_id" => "Units",
        "user_id" => id == IntegrationUid ? IntegrationUserName : "User",
        _ => "",
    };

    private sealed record Product(long Id, string DefaultCode, bool Storable);

    private sealed record Location(long Id, string Name, string Usage);

    private sealed record Move(long Id, string Name, long ProductId, long LocationId, long LocationDestId, double Quantity, bool ByHub);

    private sealed class Quant(long id, long productId, long locationId)
    {
        public long Id { get; } = id;
        public long ProductId { get; } = productId;
        public long LocationId { get; } = locationId;
        public double Quantity { get; set; }
        public double InventoryQuantity { get; set; }
        public double InventoryDiff { get; set; }
        public bool InventorySet { get; set; }
        public long? UserId { get; set; }

        /// <summary>Stock moved since the counted quantity was set (Odoo's <c>is_outdated</c>).</summary>
        public bool Outdated => InventorySet && Math.Abs(InventoryQuantity - InventoryDiff - Quantity) > 1e-9;
    }

    /// <summary>An Odoo exception, answered as a JSON-RPC error with its Python name.</summary>
    private sealed class OdooFault(string name, string message) : Exception(message)
    {
        public string Name { get; } = name;
    }

    /// <summary>Odoo domains: prefix notation with '|', '&amp;' and '!', implicit '&amp;' between top-level terms.</summary>
    private static class Domain
    {
        public static Func<Dictionary<string, object?>, bool> Parse(JsonElement domain, string model, Func<string, bool> known)
        {
            if (domain.ValueKind != JsonValueKind.Array)
            {
                throw new OdooFault("builtins.ValueError", $"Invalid domain: {domain.GetRawText()}");
            }
            var terms = domain.EnumerateArray().ToList();
            var index = 0;
            var all = new List<Func<Dictionary<string, object?>, bool>>();
            while (index < terms.Count)
            {
                all.Add(Term(terms, ref index, model, known));
            }
            return r => all.All(p => p(r));
        }

        private static Func<Dictionary<string, object?>, bool> Term(List<JsonElement> terms, ref int index, string model, Func<string, bool> known)
        {
            if (index >= terms.Count)
            {
                throw new OdooFault("builtins.ValueError", "Invalid domain: an operator is missing an operand");
            }
            var term = terms[index++];
            if (term.ValueKind == JsonValueKind.String)
            {
                switch (term.GetString())
                {
                    case "|":
                        {
                            var a = Term(terms, ref index, model, known);
                            var b = Term(terms, ref index, model, known);
                            return r => a(r) || b(r);
                        }
                    case "&":
                        {
                            var a = Term(terms, ref index, model, known);
                            var b = Term(terms, ref index, model, known);
                            return r => a(r) && b(r);
                        }
                    case "!":
                        {
                            var a = Term(terms, ref index, model, known);
                            return r => !a(r);
                        }
                    default:
                        throw new OdooFault("builtins.ValueError", $"Invalid domain operator {term.GetRawText()}");
                }
            }
            if (term.ValueKind != JsonValueKind.Array || term.GetArrayLength() != 3 || term[0].ValueKind != JsonValueKind.String
                || term[1].ValueKind != JsonValueKind.String)
            {
                throw new OdooFault("builtins.ValueError", $"Invalid leaf {term.GetRawText()}");
            }
            var field = term[0].GetString()!;
            if (!known(field))
            {
                throw new OdooFault("builtins.ValueError", $"Invalid field {model}.{field} in leaf {term.GetRawText()}");
            }
            var op = term[1].GetString()!;
            var value = term[2].Clone();
            return op switch
            {
                "=" => r => Equal(r[field], value),
                "!=" => r => !Equal(r[field], value),
                "in" => In(field, value, negate: false),
                "not in" => In(field, value, negate: true),
                "=like" => r => r[field] is string s && value.ValueKind == JsonValueKind.String && Like(s, value.GetString()!, anchored: true),
                "like" => r => r[field] is string s && value.ValueKind == JsonValueKind.String && Like(s, value.GetString()!, anchored: false),
                "<" or ">" or "<=" or ">=" => r => Compare(r[field], value, op),
                _ => throw new OdooFault("builtins.ValueError", $"Invalid leaf {term.GetRawText()}"),
            };
        }

        private static Func<Dictionary<string, object?>, bool> In(string field, JsonElement value, bool negate)
        {
            if (value.ValueKind != JsonValueKind.Array)
            {
                throw new OdooFault("builtins.ValueError", $"The operator 'in' needs a list for {field}");
            }
            var items = value.EnumerateArray().Select(v => v.Clone()).ToList();
            return r => items.Any(v => Equal(r[field], v)) != negate;
        }

        private static bool Equal(object? actual, JsonElement expected) => expected.ValueKind switch
        {
            JsonValueKind.False => actual is null or false,
            JsonValueKind.True => actual is true,
            JsonValueKind.Null => actual is null,
            JsonValueKind.String => actual is string s && s == expected.GetString(),
            JsonValueKind.Number => actual switch
            {
                long l => Int(expected, out var e) ? l == e : l == expected.GetDouble(),
                double d => d == expected.GetDouble(),
                _ => false,
            },
            _ => false,
        };

        private static bool Compare(object? actual, JsonElement expected, string op)
        {
            if (expected.ValueKind != JsonValueKind.Number || actual is not (long or double))
            {
                return false;
            }
            var a = Convert.ToDouble(actual, CultureInfo.InvariantCulture);
            var e = expected.GetDouble();
            return op switch { "<" => a < e, ">" => a > e, "<=" => a <= e, _ => a >= e };
        }

        /// <summary>SQL LIKE with % and _ and '\' as the escape character (PostgreSQL's default, which Odoo uses).</summary>
        private static bool Like(string text, string pattern, bool anchored)
        {
            if (!anchored)
            {
                pattern = "%" + pattern + "%";
            }
            var regex = new StringBuilder("^");
            for (var i = 0; i < pattern.Length; i++)
            {
                var c = pattern[i];
                if (c == '\\' && i + 1 < pattern.Length)
                {
                    regex.Append(System.Text.RegularExpressions.Regex.Escape(pattern[++i].ToString()));
                }
                else
                {
                    regex.Append(c switch { '%' => ".*", '_' => ".", _ => System.Text.RegularExpressions.Regex.Escape(c.ToString()) });
                }
            }
            return System.Text.RegularExpressions.Regex.IsMatch(text, regex.Append('$').ToString(), System.Text.RegularExpressions.RegexOptions.Singleline);
        }
    }
}
