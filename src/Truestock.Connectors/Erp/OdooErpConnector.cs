using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Truestock.Connectors.Erp;

/// <summary>
/// Books stock movements in Odoo through its external JSON-RPC API (<c>/jsonrpc</c>, services <c>common</c> and
/// <c>object</c>), as inventory adjustments of <c>stock.quant</c>, each named after the movement's idempotency key.
/// </summary>
/// <remarks>
/// <para>
/// Per batch: <c>common.login</c> once (the uid is kept); SKUs not in <c>ProductMap</c> are looked up once by Internal
/// Reference (<c>product.product</c> <c>search_read</c> on <c>default_code</c>); then one <c>stock.move</c>
/// <c>search_read</c> finds the keys Odoo has already booked (a done move whose <c>name</c> is the key, or the key
/// followed by " (user)" as Odoo names adjustments made for a user): those are Posted without booking again.
/// </para>
/// <para>
/// Per remaining movement, serialised per quant: <c>stock.quant</c> <c>search_read</c> of the location's quant,
/// <c>write</c> (or <c>create</c>) of <c>inventory_quantity</c> = quantity + delta in <c>inventory_mode</c>, <c>read</c>
/// of <c>inventory_diff_quantity</c> to check that the difference Odoo will book is exactly the delta (another user may
/// have moved stock in between; then it is set again), and <c>action_apply_inventory</c> with
/// <c>context.inventory_name</c> = the key, which creates and validates the <c>stock.move</c>. A final
/// <c>search_read</c> gives the moves' ids, which are the document ids. Only reads and the absolute quantity writes are
/// retried inside a call; <c>action_apply_inventory</c> is not, because a lost answer may hide a booking, and the next
/// attempt's key search finds it.
/// </para>
/// </remarks>
public sealed class OdooErpConnector : IErpConnector
{
    private const int QuantAttemptsMax = 3;
    private const int LockStripes = 256;
    private const double QuantityTolerance = 1e-6;

    private readonly ErpSettings _settings;
    private readonly ErpContext _context;
    private readonly ErpHttp _http;
    private readonly OdooRpc _rpc;
    private readonly ConcurrentDictionary<string, long> _products = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim[] _quantLocks = Enumerable.Range(0, LockStripes).Select(_ => new SemaphoreSlim(1, 1)).ToArray();
    private readonly SemaphoreSlim _loginGate = new(1, 1);
    private long _uid;

    internal OdooErpConnector(ErpSettings settings, ErpContext context)
    {
        _settings = settings;
        _context = context;
        _http = new ErpHttp(settings, context, Counters);
        _rpc = new OdooRpc(settings, _http);
        foreach (var (sku, id) in settings.ProductMap)
        {
            _products[sku] = id;
        }
    }

    /// <inheritdoc />
    public int BatchSizeMax => _settings.EffectiveBatchSizeMax;

    /// <inheritdoc />
    public ConnectorCounters Counters { get; } = new();

    /// <inheritdoc />
    public async Task<IReadOnlyList<ErpPostOutcome>> PostAsync(IReadOnlyList<ErpMovement> movements, CancellationToken cancellationToken)
    {
        if (ErpMovements.Begin(movements, BatchSizeMax, _settings, _context, _settings.PasswordName, "log in to Odoo", out var password) is { } early)
        {
            return early;
        }
        var (uid, loginFailure) = await LoginAsync(password, cancellationToken).ConfigureAwait(false);
        if (loginFailure is not null)
        {
            return ErpMovements.All(movements, loginFailure.Value.Status, loginFailure.Value.Error);
        }

        var outcomes = new ConcurrentDictionary<string, ErpPostOutcome>(StringComparer.Ordinal);
        var open = new List<ErpMovement>(movements.Count);
        foreach (var m in movements)
        {
            if (_settings.LocationMap.ContainsKey(m.LocationId))
            {
                open.Add(m);
            }
            else
            {
                outcomes[m.Key] = new ErpPostOutcome(m.Key, ErpPostStatus.Permanent, Error:
                    $"Hub location '{m.LocationId}' has no Odoo location: add Truestock:Erp:LocationMap:{m.LocationId}=<stock.location id>.");
            }
        }

        var products = await ResolveProductsAsync(uid, password, open.Select(m => m.Sku).Distinct(StringComparer.Ordinal).ToList(), cancellationToken).ConfigureAwait(false);
        if (products.Failure is { } productFailure)
        {
            return Finish(movements, outcomes, open, productFailure.Status, productFailure.Error);
        }
        open.RemoveAll(m =>
        {
            if (products.Errors.TryGetValue(m.Sku, out var error))
            {
                outcomes[m.Key] = new ErpPostOutcome(m.Key, ErpPostStatus.Permanent, Error: error);
                return true;
            }
            return false;
        });

        // Keys Odoo has already booked (an earlier attempt whose answer was lost, or a crash before the hub recorded it).
        var booked = await FindBookedAsync(uid, password, open.Select(m => m.Key).ToList(), cancellationToken).ConfigureAwait(false);
        if (booked.Failure is { } searchFailure)
        {
            return Finish(movements, outcomes, open, searchFailure.Status, searchFailure.Error);
        }
        open.RemoveAll(m =>
        {
            if (booked.Moves.TryGetValue(m.Key, out var moveId))
            {
                outcomes[m.Key] = new ErpPostOutcome(m.Key, ErpPostStatus.Posted, moveId.ToString(CultureInfo.InvariantCulture));
                return true;
            }
            return false;
        });

        var applied = new ConcurrentBag<string>();
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = _settings.ConcurrencyMax, CancellationToken = cancellationToken };
        await Parallel.ForEachAsync(open, parallel, async (m, ct) =>
        {
            var failure = await BookAsync(uid, password, m, products.Ids[m.Sku], ct).ConfigureAwait(false);
            if (failure is { } f)
            {
                outcomes[m.Key] = new ErpPostOutcome(m.Key, f.Status, Error: f.Error);
            }
            else
            {
                applied.Add(m.Key);
            }
        }).ConfigureAwait(false);

        if (!applied.IsEmpty)
        {
            var found = await FindBookedAsync(uid, password, applied.ToList(), cancellationToken).ConfigureAwait(false);
            foreach (var key in applied)
            {
                // Booked either way; the document id is only missing when the lookup itself failed.
                outcomes[key] = new ErpPostOutcome(key, ErpPostStatus.Posted,
                    found.Moves.TryGetValue(key, out var id) ? id.ToString(CultureInfo.InvariantCulture) : null);
            }
        }
        return movements.Select(m => outcomes[m.Key]).ToArray();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        _loginGate.Dispose();
        foreach (var gate in _quantLocks)
        {
            gate.Dispose();
        }
        return ValueTask.CompletedTask;
    }

    private static ErpPostOutcome[] Finish(IReadOnlyList<ErpMovement> movements, ConcurrentDictionary<string, ErpPostOutcome> outcomes,
        List<ErpMovement> open, ErpPostStatus status, string error)
    {
        foreach (var m in open)
        {
            outcomes[m.Key] = new ErpPostOutcome(m.Key, status, Error: error);
        }
        return movements.Select(m => outcomes[m.Key]).ToArray();
    }

    private static (ErpPostStatus Status, string Error) Failure(OdooReply reply) =>
        (reply.Transient ? ErpPostStatus.Transient : ErpPostStatus.Permanent, reply.Error!);

    private async Task<(long Uid, (ErpPostStatus Status, string Error)? Failure)> LoginAsync(string password, CancellationToken ct)
    {
        var uid = Interlocked.Read(ref _uid);
        if (uid > 0)
        {
            return (uid, null);
        }
        await _loginGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            uid = Interlocked.Read(ref _uid);
            if (uid > 0)
            {
                return (uid, null);
            }
            var (id, reply) = await _rpc.LoginAsync(password, ct).ConfigureAwait(false);
            if (!reply.Succeeded)
            {
                return (0, Failure(reply));
            }
            if (id is null)
            {
                return (0, (ErpPostStatus.Permanent,
                    $"Odoo refused the login '{_settings.Login}' on database '{_settings.Database}': check the login and the '{_settings.PasswordName}' secret (a password or an API key)."));
            }
            Interlocked.Exchange(ref _uid, id.Value);
            return (id.Value, null);
        }
        finally
        {
            _loginGate.Release();
        }
    }

    private async Task<OdooReply> Execute(long uid, string password, string model, string method, JsonArray args, JsonObject? kwargs,
        bool repeatable, CancellationToken ct)
    {
        var reply = await _rpc.ExecuteAsync(uid, password, model, method, args, kwargs, repeatable, ct).ConfigureAwait(false);
        if (reply.ErrorName == "odoo.exceptions.AccessDenied")
        {
            // The password or API key changed or was revoked: log in again next time, so a fixed secret is picked up.
            Interlocked.Exchange(ref _uid, 0);
        }
        return reply;
    }

    private async Task<(Dictionary<string, long> Ids, Dictionary<string, string> Errors, (ErpPostStatus Status, string Error)? Failure)> ResolveProductsAsync(
        long uid, string password, List<string> skus, CancellationToken ct)
    {
        var ids = new Dictionary<string, long>(StringComparer.Ordinal);
        var errors = new Dictionary<string, string>(StringComparer.Ordinal);
        var unknown = new List<string>();
        foreach (var sku in skus)
        {
            if (_products.TryGetValue(sku, out var id))
            {
                ids[sku] = id;
            }
            else
            {
                unknown.Add(sku);
            }
        }
        if (unknown.Count == 0)
        {
            return (ids, errors, null);
        }
        var domain = new JsonArray(new JsonArray("default_code", "in", new JsonArray(unknown.Select(s => (JsonNode?)s).ToArray())));
        var reply = await Execute(uid, password, "product.product", "search_read", new JsonArray(domain),
            new JsonObject { ["fields"] = new JsonArray("id", "default_code") }, repeatable: true, ct).ConfigureAwait(false);
        if (!reply.Succeeded)
        {
            return (ids, errors, Failure(reply));
        }
        var found = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        if (reply.Result is { ValueKind: JsonValueKind.Array } rows)
        {
            foreach (var row in rows.EnumerateArray())
            {
                if (row.TryGetProperty("default_code", out var code) && code.ValueKind == JsonValueKind.String
                    && row.TryGetProperty("id", out var idValue) && idValue.TryGetInt64(out var productId))
                {
                    if (!found.TryGetValue(code.GetString()!, out var list))
                    {
                        found[code.GetString()!] = list = [];
                    }
                    list.Add(productId);
                }
            }
        }
        foreach (var sku in unknown)
        {
            if (!found.TryGetValue(sku, out var candidates))
            {
                errors[sku] = $"Odoo has no active product with Internal Reference (default_code) '{sku}': create it, or map it with Truestock:Erp:ProductMap.";
            }
            else if (candidates.Count > 1)
            {
                // Booking on a guess would put units on the wrong product of the books.
                errors[sku] = $"Odoo has {candidates.Count} products with Internal Reference '{sku}' (ids {string.Join(", ", candidates)}): map the right one with Truestock:Erp:ProductMap.";
            }
            else
            {
                _products[sku] = ids[sku] = candidates[0];
            }
        }
        return (ids, errors, null);
    }

    /// <summary>The done moves named after the keys (the key itself, or the key and " (user)"): key → lowest move id.</summary>
    private async Task<(Dictionary<string, long> Moves, (ErpPostStatus Status, string Error)? Failure)> FindBookedAsync(
        long uid, string password, List<string> keys, CancellationToken ct)
    {
        var moves = new Dictionary<string, long>(StringComparer.Ordinal);
        if (keys.Count == 0)
        {
            return (moves, null);
        }
        // Prefix notation: state = done AND (name = k1 OR name =like 'k1 (%' OR name = k2 OR …).
        var domain = new JsonArray(new JsonArray("state", "=", "done"));
        for (var i = 1; i < keys.Count * 2; i++)
        {
            domain.Add("|");
        }
        foreach (var key in keys)
        {
            domain.Add(new JsonArray("name", "=", key));
            domain.Add(new JsonArray("name", "=like", EscapeLike(key) + " (%"));
        }
        var reply = await Execute(uid, password, "stock.move", "search_read", new JsonArray(domain),
            new JsonObject { ["fields"] = new JsonArray("id", "name"), ["order"] = "id" }, repeatable: true, ct).ConfigureAwait(false);
        if (!reply.Succeeded)
        {
            return (moves, Failure(reply));
        }
        var wanted = keys.ToHashSet(StringComparer.Ordinal);
        if (reply.Result is { ValueKind: JsonValueKind.Array } rows)
        {
            foreach (var row in rows.EnumerateArray())
            {
                if (row.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
                    && row.TryGetProperty("id", out var idValue) && idValue.TryGetInt64(out var id))
                {
                    var text = name.GetString()!;
                    var cut = text.IndexOf(" (", StringComparison.Ordinal);
                    var key = wanted.Contains(text) ? text : cut > 0 ? text[..cut] : text;
                    if (wanted.Contains(key) && (!moves.TryGetValue(key, out var seen) || id < seen))
                    {
                        moves[key] = id;
                    }
                }
            }
        }
        return (moves, null);
    }

    /// <summary>Books one movement as an inventory adjustment of its quant; null when booked.</summary>
    private async Task<(ErpPostStatus Status, string Error)?> BookAsync(long uid, string password, ErpMovement m, long productId, CancellationToken ct)
    {
        var locationId = _settings.LocationMap[m.LocationId];
        // Two movements of one quant must not interleave: the second write of inventory_quantity would replace the first.
        var gate = _quantLocks[(int)((uint)HashCode.Combine(productId, locationId) % LockStripes)];
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var (failure, quantId) = await AdjustAsync(uid, password, m, productId, locationId, ct).ConfigureAwait(false);
            if (failure is { } f && quantId > 0)
            {
                // The counted quantity set for this movement must not stay on the quant: an Odoo user applying all
                // counts would book it without the hub. A failure to clear it is reported with the original error.
                var clear = await Execute(uid, password, "stock.quant", "action_clear_inventory_quantity", new JsonArray(new JsonArray(quantId)),
                    null, repeatable: true, ct).ConfigureAwait(false);
                if (!clear.Succeeded)
                {
                    return (f.Status, ErpHttp.Bound($"{f.Error} The counted quantity set on quant {quantId} could not be cleared: {clear.Error}"));
                }
            }
            return failure;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Sets and applies the quant's counted quantity; returns the failure (null when booked) and the quant id once known.</summary>
    private async Task<((ErpPostStatus Status, string Error)? Failure, long QuantId)> AdjustAsync(long uid, string password, ErpMovement m, long productId,
        long locationId, CancellationToken ct)
    {
        long quantId = 0;
        string? wizard = null;
        var inventoryMode = new JsonObject { ["context"] = new JsonObject { ["inventory_mode"] = true } };
        for (var attempt = 1; attempt <= QuantAttemptsMax; attempt++)
        {
            var quantDomain = new JsonArray(
                new JsonArray("product_id", "=", productId), new JsonArray("location_id", "=", locationId),
                new JsonArray("lot_id", "=", false), new JsonArray("package_id", "=", false), new JsonArray("owner_id", "=", false));
            var search = await Execute(uid, password, "stock.quant", "search_read", new JsonArray(quantDomain),
                new JsonObject { ["fields"] = new JsonArray("id", "quantity"), ["limit"] = 1 }, repeatable: true, ct).ConfigureAwait(false);
            if (!search.Succeeded)
            {
                return (Failure(search), quantId);
            }
            double quantity = 0;
            if (search.Result is { ValueKind: JsonValueKind.Array } quants && quants.GetArrayLength() > 0)
            {
                var q = quants[0];
                quantId = q.GetProperty("id").GetInt64();
                quantity = q.TryGetProperty("quantity", out var qty) && qty.ValueKind == JsonValueKind.Number ? qty.GetDouble() : 0;
            }
            var target = quantity + m.OnHandDelta;
            OdooReply set;
            if (quantId > 0)
            {
                set = await Execute(uid, password, "stock.quant", "write",
                    new JsonArray(new JsonArray(quantId), new JsonObject { ["inventory_quantity"] = target }),
                    inventoryMode.DeepClone().AsObject(), repeatable: true, ct).ConfigureAwait(false);
            }
            else
            {
                // user_id false: Odoo would otherwise add the integration user's name to the move's name.
                set = await Execute(uid, password, "stock.quant", "create",
                    new JsonArray(new JsonObject
                    {
                        ["product_id"] = productId, ["location_id"] = locationId, ["inventory_quantity"] = target, ["user_id"] = false,
                    }),
                    inventoryMode.DeepClone().AsObject(), repeatable: true, ct).ConfigureAwait(false);
                if (set.Succeeded && !(set.Result is { } created && TryId(created, out quantId)))
                {
                    return ((ErpPostStatus.Transient, "Odoo created the quant but did not return its id."), 0);
                }
            }
            if (!set.Succeeded)
            {
                return (Failure(set), quantId);
            }
            var check = await Execute(uid, password, "stock.quant", "read",
                new JsonArray(new JsonArray(quantId), new JsonArray("quantity", "inventory_diff_quantity")), null, repeatable: true, ct).ConfigureAwait(false);
            if (!check.Succeeded)
            {
                return (Failure(check), quantId);
            }
            if (check.Result is not { ValueKind: JsonValueKind.Array } read || read.GetArrayLength() == 0
                || !read[0].TryGetProperty("inventory_diff_quantity", out var diff) || diff.ValueKind != JsonValueKind.Number)
            {
                return ((ErpPostStatus.Transient, "Odoo did not return the quant's inventory difference."), quantId);
            }
            if (Math.Abs(diff.GetDouble() - m.OnHandDelta) > QuantityTolerance)
            {
                // Stock moved in Odoo between the read and the write: set the counted quantity again.
                continue;
            }
            var apply = await Execute(uid, password, "stock.quant", "action_apply_inventory", new JsonArray(new JsonArray(quantId)),
                new JsonObject { ["context"] = new JsonObject { ["inventory_mode"] = true, ["inventory_name"] = m.Key } },
                repeatable: false, ct).ConfigureAwait(false);
            if (!apply.Succeeded)
            {
                return (Failure(apply), quantId);
            }
            if (apply.Result is { ValueKind: JsonValueKind.Object } action)
            {
                // Odoo answered with a wizard instead of applying, usually "Conflict in Inventory Adjustment" (stock
                // moved after the quantity was set). Nothing was booked; set it again.
                wizard = action.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : "a wizard";
                continue;
            }
            return (null, quantId);
        }
        var error = wizard is null
            ? string.Create(CultureInfo.InvariantCulture,
                $"The Odoo quant of product {productId} at location {locationId} kept changing during {QuantAttemptsMax} attempts to adjust it.")
            : string.Create(CultureInfo.InvariantCulture,
                $"Odoo answered '{wizard}' instead of applying the adjustment of product {productId} at location {locationId}, {QuantAttemptsMax} times.");
        return ((ErpPostStatus.Transient, error), quantId);
    }

    private static bool TryId(JsonElement value, out long id)
    {
        id = 0;
        if (value.ValueKind == JsonValueKind.Number)
        {
            return value.TryGetInt64(out id);
        }
        return value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 1 && value[0].TryGetInt64(out id);
    }

    /// <summary>Escapes LIKE wildcards, so that a key matches only itself (event ids may contain '_').</summary>
    internal static string EscapeLike(string text)
    {
        var sb = new StringBuilder(text.Length + 4);
        foreach (var c in text)
        {
            if (c is '\\' or '%' or '_')
            {
                sb.Append('\\');
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
