using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Truestock.Connectors.Shopify;

/// <summary>
/// Publishes available-to-sell quantities to Shopify through the GraphQL Admin API: it finds the
/// inventory item of each SKU with the <c>inventoryItems</c> query (cached), then sets the
/// "available" quantity at one location with the <c>inventorySetQuantities</c> mutation, up to
/// 250 items a call, with Shopify's compare-and-swap check and an idempotency key. It keeps to the
/// calculated-query-cost leaky bucket itself: it estimates each query's cost and waits for that
/// many points, aligns its bucket with <c>extensions.cost.throttleStatus</c> after every answer,
/// and waits and retries (a bounded number of times) after a <c>THROTTLED</c> answer or a 429.
/// See docs/connectors/shopify.md.
/// </summary>
public sealed class ShopifyConnector : IChannelConnector
{
    /// <summary>THROTTLED answers (or 429s) one call takes before its updates become Transient.</summary>
    internal const int ThrottleRetriesMax = 6;

    /// <summary>Retries of one call after timeouts, transport errors and 5xx before its updates become Transient.</summary>
    internal const int TransientRetriesMax = 2;

    /// <summary>
    /// Mutation rounds per publication: a round repeats items Shopify did not apply because of
    /// another item's error, and items whose compare-and-swap check failed (after a fresh read).
    /// </summary>
    internal const int WriteRoundsMax = 3;

    /// <summary>The most bytes read from one answer.</summary>
    internal const int ResponseBytesMax = 8 * 1024 * 1024;

    /// <summary>Channel error texts are cut to this length in outcomes.</summary>
    internal const int ErrorTextCharsMax = 500;

    /// <summary>Shopify rejects any single query costing more than this, whatever the plan.</summary>
    internal const double QueryCostMax = 1000;

    /// <summary>A mutation costs 10 points (Shopify's default mutation cost).</summary>
    private const double MutationCost = 10;

    /// <summary><c>locations(first: 50)</c> with scalar fields: 2 + 50 · 1.</summary>
    private const double LocationsCost = 2 + LocationsFirst;

    private const int LocationsFirst = 50;

    /// <summary>A SKU whose search had more pages than it asked for is searched alone with this page size.</summary>
    private const int SingleSkuFirst = 25;

    private static readonly TimeSpan ThrottleJitterBase = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan ThrottleJitterCap = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan TransientBackoffBase = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan TransientBackoffCap = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan TooManyRequestsBackoffBase = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan TooManyRequestsBackoffCap = TimeSpan.FromSeconds(10);

    private const string LookupOperation = "TruestockInventoryItemsBySku";
    private const string LookupDocument = """
        query TruestockInventoryItemsBySku($query: String!, $first: Int!, $locationId: ID!) {
          inventoryItems(first: $first, query: $query) {
            nodes {
              id
              sku
              tracked
              inventoryLevel(locationId: $locationId) {
                quantities(names: ["available"]) {
                  name
                  quantity
                }
              }
            }
            pageInfo {
              hasNextPage
            }
          }
        }
        """;

    private const string LocationsOperation = "TruestockLocationsByName";
    private const string LocationsDocument = """
        query TruestockLocationsByName($query: String!) {
          locations(first: 50, query: $query) {
            nodes {
              id
              name
              isActive
            }
          }
        }
        """;

    private const string SetOperation = "TruestockSetAvailable";

    private readonly ShopifySettings _settings;
    private readonly ConnectorContext _context;
    private readonly Uri _graphqlUrl;
    private readonly ShopifySkuCache _cache;
    private readonly ShopifyAccessTokens _tokens;
    private readonly SemaphoreSlim _locationGate = new(1, 1);
    private readonly Lock _bucketGate = new();
    private readonly ConcurrentDictionary<string, double> _costFactors = new(StringComparer.Ordinal);
    private TokenBucket _bucket;
    private double _inFlightCost;
    private string? _resolvedLocationId;

    private ShopifyConnector(ShopifySettings settings, ConnectorContext context)
    {
        _settings = settings;
        _context = context;
        _graphqlUrl = new Uri(settings.BaseUrl, $"admin/api/{settings.ApiVersion}/graphql.json");
        _cache = new ShopifySkuCache(settings.SkuCacheSize);
        _tokens = new ShopifyAccessTokens(context, settings.TokenUrl, settings.Timeout, Counters);
        _bucket = new TokenBucket(settings.BucketSize, settings.RestoreRate, context.Time);
    }

    /// <inheritdoc />
    public int BatchSizeMax => _settings.BatchSize;

    /// <inheritdoc />
    public ConnectorCounters Counters { get; } = new();

    /// <summary>SKUs whose inventory item is cached (for diagnostics and tests).</summary>
    internal int CachedSkus => _cache.Count;

    /// <summary>The points the connector's bucket holds at most now (Shopify's reported maximum once it answered).</summary>
    internal double BucketCapacity
    {
        get
        {
            lock (_bucketGate)
            {
                return _bucket.Capacity;
            }
        }
    }

    /// <summary>Validates the channel's Shopify settings; returns a message naming the field, or null when valid.</summary>
    public static string? Validate(JsonElement settings) => ShopifySettings.Parse(settings, out _);

    /// <summary>Creates the connector for valid settings (see <see cref="Validate"/>).</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var error = ShopifySettings.Parse(settings, out var parsed);
        if (error is not null)
        {
            throw new ArgumentException($"Invalid Shopify settings for channel '{context.ChannelId}': {error}", nameof(settings));
        }
        return new ShopifyConnector(parsed!, context);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<PublishOutcome>> PublishAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count > BatchSizeMax)
        {
            throw new ArgumentException($"A Shopify batch holds at most {BatchSizeMax} updates; got {updates.Count}.", nameof(updates));
        }
        var outcomes = new PublishOutcome?[updates.Count];
        var pending = Admit(updates, outcomes);

        if (pending.Count > 0)
        {
            await PublishPendingAsync(pending, outcomes, cancellationToken).ConfigureAwait(false);
        }

        var result = new PublishOutcome[updates.Count];
        for (var i = 0; i < result.Length; i++)
        {
            // Every path above sets an outcome; this only guards against a bug leaving a hole.
            result[i] = outcomes[i] ?? new PublishOutcome(updates[i].Sku, updates[i].Version, PublishStatus.Transient, "the Shopify connector produced no outcome for this update.");
        }
        return result;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _locationGate.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Decides which updates to send: a version no higher than one Shopify already accepted from
    /// this connector for the SKU is not sent again (it would overwrite a newer quantity), and of
    /// two updates of one SKU in a batch only the newer is sent.
    /// </summary>
    private List<Pending> Admit(IReadOnlyList<AtsUpdate> updates, PublishOutcome?[] outcomes)
    {
        var pending = new List<Pending>(updates.Count);
        var bySku = new Dictionary<string, Pending>(StringComparer.Ordinal);
        for (var i = 0; i < updates.Count; i++)
        {
            var update = updates[i] ?? throw new ArgumentException("The batch holds a null update.", nameof(updates));
            if (string.IsNullOrEmpty(update.Sku))
            {
                outcomes[i] = new PublishOutcome(update.Sku ?? "", update.Version, PublishStatus.Permanent, "the SKU is empty; Shopify cannot search for it.");
                continue;
            }
            if (update.Quantity is < int.MinValue or > int.MaxValue)
            {
                outcomes[i] = Outcome(update, PublishStatus.Permanent, $"quantity {update.Quantity} does not fit Shopify's Int (a 32-bit integer).");
                continue;
            }
            if (_cache.TryGet(update.Sku, out var entry) && entry.HighestVersion >= update.Version)
            {
                // Shopify already shows a quantity of this or a newer version: sending this one would
                // move the channel backwards, so it is acknowledged as superseded without a call.
                outcomes[i] = Outcome(update, PublishStatus.Accepted, null);
                continue;
            }
            if (bySku.TryGetValue(update.Sku, out var other))
            {
                if (other.Update.Version >= update.Version)
                {
                    outcomes[i] = Outcome(update, PublishStatus.Accepted, null);
                    continue;
                }
                outcomes[other.Index] = Outcome(other.Update, PublishStatus.Accepted, null);
                pending.Remove(other);
            }
            var item = new Pending(i, update);
            pending.Add(item);
            bySku[update.Sku] = item;
        }
        return pending;
    }

    private async Task PublishPendingAsync(List<Pending> pending, PublishOutcome?[] outcomes, CancellationToken cancellationToken)
    {
        if (_tokens.ConfigurationError() is { } credentialError)
        {
            FailAll(pending, outcomes, PublishStatus.Permanent, credentialError);
            return;
        }

        var location = await ResolveLocationAsync(cancellationToken).ConfigureAwait(false);
        if (location.Id is null)
        {
            FailAll(pending, outcomes, location.Status, location.Error);
            return;
        }

        var toLookUp = new List<Pending>();
        foreach (var item in pending)
        {
            // With compare-and-swap on, a write needs the quantity Shopify has now; an entry that
            // lost it (after a write whose fate is unknown) is read again first.
            if (_cache.TryGet(item.Update.Sku, out var entry) && (entry.KnownAvailable is not null || !_settings.CompareAndSwap))
            {
                item.InventoryItemId = entry.InventoryItemId;
                item.KnownAvailable = entry.KnownAvailable;
            }
            else
            {
                toLookUp.Add(item);
            }
        }
        if (toLookUp.Count > 0)
        {
            await LookUpAsync(toLookUp, location.Id, outcomes, cancellationToken).ConfigureAwait(false);
        }

        var mapped = pending.Where(p => outcomes[p.Index] is null && p.InventoryItemId is not null).ToList();
        if (mapped.Count > 0)
        {
            await WriteAsync(mapped, location.Id, outcomes, cancellationToken).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- location

    private async Task<(string? Id, PublishStatus Status, string? Error)> ResolveLocationAsync(CancellationToken cancellationToken)
    {
        if (_settings.LocationId is { } configured)
        {
            return (configured, PublishStatus.Accepted, null);
        }
        if (Volatile.Read(ref _resolvedLocationId) is { } known)
        {
            return (known, PublishStatus.Accepted, null);
        }
        await _locationGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Volatile.Read(ref _resolvedLocationId) is { } resolved)
            {
                return (resolved, PublishStatus.Accepted, null);
            }
            var name = _settings.LocationName!;
            var variables = new JsonObject { ["query"] = "name:" + SearchQuote(name) };
            var result = await SendAsync(LocationsOperation, LocationsDocument, variables, LocationsCost, cancellationToken).ConfigureAwait(false);
            if (!result.Ok)
            {
                return (null, result.Status, $"looking up Shopify location '{name}' failed: {result.Error}");
            }
            var nodes = Path(result.Root, "data", "locations", "nodes");
            var locations = nodes.ValueKind == JsonValueKind.Array
                ? nodes.EnumerateArray()
                    .Where(n => n.ValueKind == JsonValueKind.Object)
                    .Select(n => (Id: StringOf(n, "id"), Name: StringOf(n, "name"), Active: !n.TryGetProperty("isActive", out var a) || a.ValueKind != JsonValueKind.False))
                    .Where(l => l.Id is not null && l.Name is not null)
                    .ToList()
                : [];
            var matches = locations.Where(l => string.Equals(l.Name, name, StringComparison.Ordinal)).ToList();
            if (matches.Count == 0)
            {
                matches = locations.Where(l => string.Equals(l.Name, name, StringComparison.OrdinalIgnoreCase)).ToList();
            }
            var active = matches.Where(l => l.Active).ToList();
            if (active.Count == 1)
            {
                Volatile.Write(ref _resolvedLocationId, active[0].Id);
                return (active[0].Id, PublishStatus.Accepted, null);
            }
            if (active.Count > 1)
            {
                return (null, PublishStatus.Permanent, $"{active.Count} active Shopify locations are named '{name}' ({string.Join(", ", active.Select(l => l.Id))}); set \"locationId\" instead of \"locationName\".");
            }
            return matches.Count > 0
                ? (null, PublishStatus.Permanent, $"Shopify location '{name}' ({matches[0].Id}) is deactivated.")
                : (null, PublishStatus.Permanent, $"no Shopify location is named '{name}' (the locations query \"name:{name}\" found no exact match).");
        }
        finally
        {
            _locationGate.Release();
        }
    }

    // ---------------------------------------------------------------- SKU lookup

    /// <summary>
    /// Finds the inventory item and current "available" quantity of each SKU, several SKUs a query
    /// (<c>sku:"A" OR sku:"B"</c>), caching what it finds. SKUs that are not found, found on several
    /// items, untracked or not stocked at the location get a Permanent outcome.
    /// </summary>
    private async Task LookUpAsync(List<Pending> items, string locationId, PublishOutcome?[] outcomes, CancellationToken cancellationToken)
    {
        for (int start = 0, size; start < items.Count; start += size)
        {
            // Sized per chunk: the first answer may reveal a smaller bucket than configured.
            size = LookupBatchSizeNow();
            var chunk = items.GetRange(start, Math.Min(size, items.Count - start));
            await LookUpChunkAsync(chunk, wide: false, locationId, outcomes, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Searches the SKUs of one chunk, asking for one node more than there are SKUs: a further
    /// page then means some SKU matches more than one item (a duplicate SKU, or Shopify's search
    /// matching more than the exact SKU), so the chunk is split in halves and searched again, and
    /// a single SKU is searched with a wider page, until every SKU's matches are complete.
    /// </summary>
    private async Task LookUpChunkAsync(List<Pending> chunk, bool wide, string locationId, PublishOutcome?[] outcomes, CancellationToken cancellationToken)
    {
        var first = wide ? SingleSkuFirst : chunk.Count + 1;
        var variables = new JsonObject
        {
            ["query"] = string.Join(" OR ", chunk.Select(p => "sku:" + SearchQuote(p.Update.Sku))),
            ["first"] = first,
            ["locationId"] = locationId,
        };
        var result = await SendAsync(LookupOperation, LookupDocument, variables, LookupCost(first), cancellationToken).ConfigureAwait(false);
        if (!result.Ok)
        {
            foreach (var item in chunk)
            {
                outcomes[item.Index] = Outcome(item.Update, result.Status, $"looking up the SKU in Shopify failed: {result.Error}");
            }
            return;
        }

        var connection = Path(result.Root, "data", "inventoryItems");
        if (connection.ValueKind != JsonValueKind.Object)
        {
            foreach (var item in chunk)
            {
                outcomes[item.Index] = Outcome(item.Update, PublishStatus.Transient, "the inventoryItems query answered without a connection.");
            }
            return;
        }
        var hasNextPage = Path(connection, "pageInfo", "hasNextPage").ValueKind == JsonValueKind.True;
        if (hasNextPage && !wide)
        {
            if (chunk.Count == 1)
            {
                await LookUpChunkAsync(chunk, wide: true, locationId, outcomes, cancellationToken).ConfigureAwait(false);
                return;
            }
            var half = chunk.Count / 2;
            await LookUpChunkAsync(chunk.GetRange(0, half), wide: false, locationId, outcomes, cancellationToken).ConfigureAwait(false);
            await LookUpChunkAsync(chunk.GetRange(half, chunk.Count - half), wide: false, locationId, outcomes, cancellationToken).ConfigureAwait(false);
            return;
        }
        var found = new Dictionary<string, List<JsonElement>>(StringComparer.Ordinal);
        var nodes = Path(connection, "nodes");
        if (nodes.ValueKind == JsonValueKind.Array)
        {
            foreach (var node in nodes.EnumerateArray())
            {
                // Shopify's search may match more than the exact SKU; only an exact match counts.
                if (StringOf(node, "sku") is { } sku && StringOf(node, "id") is not null)
                {
                    if (!found.TryGetValue(sku, out var list))
                    {
                        found[sku] = list = [];
                    }
                    list.Add(node);
                }
            }
        }

        foreach (var item in chunk)
        {
            var sku = item.Update.Sku;
            if (!found.TryGetValue(sku, out var matches))
            {
                _cache.Remove(sku);
                outcomes[item.Index] = Outcome(item.Update, PublishStatus.Permanent, hasNextPage
                    ? $"SKU '{sku}' not found: none of the first {SingleSkuFirst} items the inventoryItems query \"sku:{sku}\" matched has exactly this SKU."
                    : $"SKU '{sku}' not found: no Shopify inventory item has this SKU (the inventoryItems query \"sku:{sku}\" found no exact match).");
                continue;
            }
            if (matches.Count > 1)
            {
                _cache.Remove(sku);
                outcomes[item.Index] = Outcome(item.Update, PublishStatus.Permanent,
                    $"SKU '{sku}' is on {matches.Count} Shopify inventory items ({string.Join(", ", matches.Select(m => StringOf(m, "id")))}); a SKU must identify one item for its quantity to be published.");
                continue;
            }
            var node = matches[0];
            var itemId = StringOf(node, "id")!;
            if (node.TryGetProperty("tracked", out var tracked) && tracked.ValueKind == JsonValueKind.False)
            {
                _cache.Remove(sku);
                outcomes[item.Index] = Outcome(item.Update, PublishStatus.Permanent,
                    $"inventory item {itemId} (SKU '{sku}') does not track inventory in Shopify (tracked is false), so a quantity set on it has no effect.");
                continue;
            }
            if (!node.TryGetProperty("inventoryLevel", out var level) || level.ValueKind != JsonValueKind.Object)
            {
                _cache.Remove(sku);
                outcomes[item.Index] = Outcome(item.Update, PublishStatus.Permanent,
                    $"ITEM_NOT_STOCKED_AT_LOCATION: inventory item {itemId} (SKU '{sku}') is not stocked at location {locationId}.");
                continue;
            }
            long available = 0;
            if (level.TryGetProperty("quantities", out var quantities) && quantities.ValueKind == JsonValueKind.Array)
            {
                foreach (var quantity in quantities.EnumerateArray())
                {
                    if (StringOf(quantity, "name") == "available" && NumberOf(quantity, "quantity") is { } value)
                    {
                        available = (long)value;
                    }
                }
            }
            item.InventoryItemId = itemId;
            item.KnownAvailable = available;
            _cache.SetLookup(sku, itemId, available);
        }
    }

    /// <summary>How many SKUs one lookup query carries, so its cost fits the bucket and Shopify's single-query limit.</summary>
    private int LookupBatchSizeNow()
    {
        var factor = _costFactors.GetValueOrDefault(LookupOperation, 1);
        var limit = Math.Min(QueryCostMax, BucketCapacity) / factor;
        var fits = (int)Math.Floor((limit - LookupCost(1)) / 3);
        return Math.Clamp(fits, 1, Math.Min(_settings.LookupBatchSize, ShopifySettings.InputArrayItemsMax - 1));
    }

    /// <summary>
    /// The requested cost of the lookup by Shopify's rules: the connection costs 2 plus, per
    /// requested node, 1 for the item, 1 for its inventory level and 1 for the quantities; pageInfo costs 1.
    /// </summary>
    private static double LookupCost(int first) => 2 + (3.0 * first) + 1;

    // ---------------------------------------------------------------- writes

    private async Task WriteAsync(List<Pending> items, string locationId, PublishOutcome?[] outcomes, CancellationToken cancellationToken)
    {
        var pending = items;
        for (var round = 1; round <= WriteRoundsMax && pending.Count > 0; round++)
        {
            var next = new List<Pending>();
            var stale = new List<Pending>();
            for (var start = 0; start < pending.Count; start += _settings.BatchSize)
            {
                var chunk = pending.GetRange(start, Math.Min(_settings.BatchSize, pending.Count - start));
                var results = await SetQuantitiesAsync(chunk, locationId, cancellationToken).ConfigureAwait(false);
                for (var i = 0; i < chunk.Count; i++)
                {
                    var item = chunk[i];
                    var result = results[i];
                    switch (result.Kind)
                    {
                        case WriteKind.Accepted:
                            outcomes[item.Index] = Outcome(item.Update, PublishStatus.Accepted, null);
                            _cache.SetWritten(item.Update.Sku, item.InventoryItemId!, item.Update.Quantity, item.Update.Version);
                            break;
                        case WriteKind.Stale when !item.WasStale:
                            item.WasStale = true;
                            stale.Add(item);
                            break;
                        case WriteKind.Stale:
                            _cache.ForgetQuantity(item.Update.Sku);
                            outcomes[item.Index] = Outcome(item.Update, PublishStatus.Transient, $"{result.Error} (the quantity changed again at Shopify after a fresh read)");
                            break;
                        case WriteKind.NotApplied:
                            next.Add(item);
                            break;
                        default:
                            if (result.ForgetMapping)
                            {
                                _cache.Remove(item.Update.Sku);
                            }
                            else if (result.Status == PublishStatus.Transient)
                            {
                                // The write may have been applied (a lost answer): read before the next write.
                                _cache.ForgetQuantity(item.Update.Sku);
                            }
                            outcomes[item.Index] = Outcome(item.Update, result.Status, result.Error);
                            break;
                    }
                }
            }
            if (stale.Count > 0)
            {
                // Someone else (an order, the merchant, another app) changed "available" since the
                // connector last saw it. The hub is the source of truth for ATS, so the connector
                // reads the current quantity and writes again, still guarded by compare-and-swap.
                await LookUpAsync(stale, locationId, outcomes, cancellationToken).ConfigureAwait(false);
                next.AddRange(stale.Where(p => outcomes[p.Index] is null));
            }
            pending = next;
        }
        foreach (var item in pending)
        {
            outcomes[item.Index] = Outcome(item.Update, PublishStatus.Transient, $"Shopify did not apply the quantity within {WriteRoundsMax} mutation rounds.");
        }
    }

    /// <summary>Sends one <c>inventorySetQuantities</c> call for up to 250 items and reads each item's fate from its userErrors.</summary>
    private async Task<WriteResult[]> SetQuantitiesAsync(List<Pending> chunk, string locationId, CancellationToken cancellationToken)
    {
        // One key per distinct request: retries of the same body (after a timeout or a 5xx) reuse
        // it, so Shopify applies the request at most once and answers a retry with its first result.
        var key = Guid.NewGuid().ToString("D");
        for (var restart = 0; ; restart++)
        {
            var (document, variables) = BuildMutation(chunk, locationId, key);
            var result = await SendAsync(SetOperation, document, variables, MutationCost, cancellationToken).ConfigureAwait(false);
            if (!result.Ok)
            {
                return [.. chunk.Select(_ => WriteResult.Failed(result.Status, result.Error))];
            }
            var payload = Path(result.Root, "data", "inventorySetQuantities");
            if (payload.ValueKind != JsonValueKind.Object)
            {
                return [.. chunk.Select(_ => WriteResult.Failed(PublishStatus.Transient, "inventorySetQuantities answered without a payload."))];
            }
            var errors = ReadUserErrors(payload);
            if (restart < TransientRetriesMax && errors.Any(e => e.Code == "IDEMPOTENCY_CONCURRENT_REQUEST"))
            {
                // The first request with this key is still running at Shopify: ask again with the same key.
                await Task.Delay(Backoff.Delay(restart + 1, TransientBackoffBase, TransientBackoffCap, Random.Shared), _context.Time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (restart < TransientRetriesMax && errors.Any(e => e.Code is "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" or "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"))
            {
                key = Guid.NewGuid().ToString("D");
                continue;
            }
            var applied = payload.TryGetProperty("inventoryAdjustmentGroup", out var group) && group.ValueKind == JsonValueKind.Object;
            var global = errors.Where(e => e.Index is null).ToList();
            var results = new WriteResult[chunk.Count];
            for (var i = 0; i < chunk.Count; i++)
            {
                var own = errors.FirstOrDefault(e => e.Index == i);
                var error = own.Code is not null ? own : global.FirstOrDefault();
                if (error.Code is not null)
                {
                    results[i] = Classify(error, chunk[i]);
                }
                else
                {
                    // Without errors, or when Shopify reports an adjustment group despite other items'
                    // errors, this item was set; otherwise Shopify applied nothing and it goes again.
                    results[i] = errors.Count == 0 || applied ? WriteResult.Accepted : WriteResult.NotApplied;
                }
            }
            return results;
        }
    }

    private WriteResult Classify(UserError error, Pending item)
    {
        var text = Truncate($"{error.Code}: {error.Message} (SKU '{item.Update.Sku}', inventory item {item.InventoryItemId})");
        switch (error.Code)
        {
            case "CHANGE_FROM_QUANTITY_STALE" or "COMPARE_QUANTITY_STALE":
                return new WriteResult(WriteKind.Stale, PublishStatus.Transient, text, false);
            case "INVALID_INVENTORY_ITEM" or "ITEM_NOT_STOCKED_AT_LOCATION":
                return new WriteResult(WriteKind.Failed, PublishStatus.Permanent, text, true);
            case "INVALID_LOCATION":
                // A location found by name may have been deleted: find it again next time.
                Volatile.Write(ref _resolvedLocationId, null);
                return new WriteResult(WriteKind.Failed, PublishStatus.Permanent, text, false);
            case "IDEMPOTENCY_CONCURRENT_REQUEST" or "IDEMPOTENCY_KEY_PARAMETER_MISMATCH" or "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED":
                return new WriteResult(WriteKind.Failed, PublishStatus.Transient, text, false);
            default:
                // Validation errors (quantity out of range, non-mutable item, invalid reason...) do not
                // go away by retrying: the operator has to look.
                return new WriteResult(WriteKind.Failed, PublishStatus.Permanent, text, false);
        }
    }

    private (string Document, JsonObject Variables) BuildMutation(List<Pending> chunk, string locationId, string idempotencyKey)
    {
        var quantities = new JsonArray();
        foreach (var item in chunk)
        {
            var quantity = new JsonObject
            {
                ["inventoryItemId"] = item.InventoryItemId,
                ["locationId"] = locationId,
                ["quantity"] = (int)item.Update.Quantity,
            };
            if (_settings.UsesChangeFrom)
            {
                // From 2026-04 the field is mandatory; null explicitly opts out of the check.
                quantity["changeFromQuantity"] = _settings.CompareAndSwap && item.KnownAvailable is { } known ? JsonValue.Create(known) : null;
            }
            else if (_settings.CompareAndSwap)
            {
                quantity["compareQuantity"] = item.KnownAvailable ?? 0;
            }
            quantities.Add(quantity);
        }
        var input = new JsonObject
        {
            ["name"] = "available",
            ["reason"] = _settings.Reason,
            ["quantities"] = quantities,
        };
        if (!_settings.UsesChangeFrom)
        {
            input["ignoreCompareQuantity"] = !_settings.CompareAndSwap;
        }
        var directive = _settings.UsesChangeFrom ? $" @idempotent(key: \"{idempotencyKey}\")" : "";
        var document = $$"""
            mutation TruestockSetAvailable($input: InventorySetQuantitiesInput!) {
              inventorySetQuantities(input: $input){{directive}} {
                inventoryAdjustmentGroup {
                  id
                }
                userErrors {
                  code
                  field
                  message
                }
              }
            }
            """;
        return (document, new JsonObject { ["input"] = input });
    }

    private static List<UserError> ReadUserErrors(JsonElement payload)
    {
        var errors = new List<UserError>();
        if (!payload.TryGetProperty("userErrors", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            return errors;
        }
        foreach (var error in list.EnumerateArray())
        {
            int? index = null;
            if (error.TryGetProperty("field", out var field) && field.ValueKind == JsonValueKind.Array)
            {
                // Shopify names the offending input, e.g. ["input", "quantities", "3", "changeFromQuantity"].
                var path = field.EnumerateArray().Select(f => f.ValueKind == JsonValueKind.String ? f.GetString() : f.GetRawText()).ToList();
                var at = path.IndexOf("quantities");
                if (at >= 0 && at + 1 < path.Count && int.TryParse(path[at + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var i))
                {
                    index = i;
                }
            }
            errors.Add(new UserError(StringOf(error, "code") ?? "UNKNOWN", StringOf(error, "message") ?? "", index));
        }
        return errors;
    }

    // ---------------------------------------------------------------- transport

    /// <summary>
    /// Sends one GraphQL request: waits for its estimated cost in the bucket, aligns the bucket with
    /// the answer's throttle status, and retries a bounded number of times after THROTTLED, 429,
    /// timeouts, transport errors and 5xx (and once after a 401 when tokens can be refreshed).
    /// </summary>
    private async Task<GraphQlResult> SendAsync(string operation, string document, JsonObject variables, double estimatedCost, CancellationToken cancellationToken)
    {
        var body = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["query"] = document,
            ["variables"] = variables,
            ["operationName"] = operation,
        }.ToJsonString());
        var cost = estimatedCost * _costFactors.GetValueOrDefault(operation, 1);
        var throttles = 0;
        var transients = 0;
        var refreshed = false;
        while (true)
        {
            var token = await _tokens.GetAsync(cancellationToken).ConfigureAwait(false);
            if (token.Token is null)
            {
                return GraphQlResult.Failed(token.Status, token.Error);
            }

            var taken = await TakeAsync(cost, cancellationToken).ConfigureAwait(false);
            HttpStatusCode status;
            byte[] answer;
            TimeSpan? retryAfter;
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, _graphqlUrl) { Content = new ByteArrayContent(body) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                request.Headers.Accept.ParseAdd("application/json");
                request.Headers.TryAddWithoutValidation("X-Shopify-Access-Token", token.Token);
                using var timeout = new CancellationTokenSource(_settings.Timeout, _context.Time);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                Interlocked.Increment(ref Counters.Calls);
                using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
                status = response.StatusCode;
                retryAfter = Backoff.RetryAfter(response, _context.Time);
                answer = await ReadBoundedAsync(response.Content, ResponseBytesMax, linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException or InvalidDataException && !cancellationToken.IsCancellationRequested)
            {
                Interlocked.Increment(ref Counters.Failures);
                var reason = e switch
                {
                    OperationCanceledException => $"no answer within {_settings.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s",
                    _ => e.Message,
                };
                if (++transients > TransientRetriesMax)
                {
                    return GraphQlResult.Failed(PublishStatus.Transient, Truncate(reason));
                }
                await DelayAsync(Backoff.Delay(transients, TransientBackoffBase, TransientBackoffCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                continue;
            }
            finally
            {
                Release(taken);
            }

            if (status == HttpStatusCode.TooManyRequests)
            {
                Interlocked.Increment(ref Counters.Throttles);
                Bucket().Drain();
                if (++throttles > ThrottleRetriesMax)
                {
                    return GraphQlResult.Failed(PublishStatus.Transient, $"HTTP 429 after {ThrottleRetriesMax} retries: {ErrorText(answer)}");
                }
                await DelayAsync(retryAfter ?? Backoff.Delay(throttles, TooManyRequestsBackoffBase, TooManyRequestsBackoffCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (status == HttpStatusCode.Unauthorized)
            {
                Interlocked.Increment(ref Counters.Failures);
                if (!refreshed && _tokens.CanRefresh)
                {
                    refreshed = true;
                    _tokens.Invalidate(token.Token);
                    continue;
                }
                return GraphQlResult.Failed(PublishStatus.Permanent, $"HTTP 401: {ErrorText(answer)}");
            }
            if ((int)status >= 500 || status == HttpStatusCode.RequestTimeout)
            {
                Interlocked.Increment(ref Counters.Failures);
                if (++transients > TransientRetriesMax)
                {
                    return GraphQlResult.Failed(PublishStatus.Transient, $"HTTP {(int)status}: {ErrorText(answer)}");
                }
                await DelayAsync(retryAfter ?? Backoff.Delay(transients, TransientBackoffBase, TransientBackoffCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (status != HttpStatusCode.OK)
            {
                // 400 (malformed request), 402 (shop frozen), 403 (missing scope), 404 (no such shop
                // or version), 423 (shop locked): no retry fixes these without the operator.
                Interlocked.Increment(ref Counters.Failures);
                return GraphQlResult.Failed(PublishStatus.Permanent, $"HTTP {(int)status}: {ErrorText(answer)}");
            }

            JsonElement root;
            try
            {
                using var json = JsonDocument.Parse(answer);
                root = json.RootElement.Clone();
            }
            catch (JsonException)
            {
                Interlocked.Increment(ref Counters.Failures);
                if (++transients > TransientRetriesMax)
                {
                    return GraphQlResult.Failed(PublishStatus.Transient, "Shopify answered HTTP 200 with a body that is not JSON.");
                }
                await DelayAsync(Backoff.Delay(transients, TransientBackoffBase, TransientBackoffCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                continue;
            }

            var requested = ObserveCost(root);
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("errors", out var errors) && errors.ValueKind is JsonValueKind.String or JsonValueKind.Object)
            {
                // Not the GraphQL error list: an error of the HTTP layer in a 200 answer.
                Interlocked.Increment(ref Counters.Failures);
                return GraphQlResult.Failed(PublishStatus.Permanent, Truncate(errors.ValueKind == JsonValueKind.String ? errors.GetString() ?? "" : errors.GetRawText()));
            }
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("errors", out errors) && errors.ValueKind == JsonValueKind.Array && errors.GetArrayLength() > 0)
            {
                var (throttled, errorStatus, text) = ClassifyErrors(errors);
                if (throttled)
                {
                    // Shopify refused to run the query for lack of points (HTTP 200, THROTTLED). The
                    // bucket was just aligned with its throttle status, so taking the cost again waits
                    // exactly as long as Shopify needs to restore it; a little jitter keeps
                    // concurrent callers from waking together.
                    Interlocked.Increment(ref Counters.Throttles);
                    if (requested is null)
                    {
                        Bucket().Drain();
                    }
                    if (++throttles > ThrottleRetriesMax)
                    {
                        return GraphQlResult.Failed(PublishStatus.Transient, $"{text} (after {ThrottleRetriesMax} retries)");
                    }
                    await DelayAsync(Backoff.Delay(throttles, ThrottleJitterBase, ThrottleJitterCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                Interlocked.Increment(ref Counters.Failures);
                if (errorStatus == PublishStatus.Transient && ++transients <= TransientRetriesMax)
                {
                    await DelayAsync(Backoff.Delay(transients, TransientBackoffBase, TransientBackoffCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                return GraphQlResult.Failed(errorStatus, text);
            }
            if (Path(root, "data").ValueKind != JsonValueKind.Object)
            {
                // Without data the answer says nothing about the SKUs; never conclude "not found" from it.
                Interlocked.Increment(ref Counters.Failures);
                if (++transients > TransientRetriesMax)
                {
                    return GraphQlResult.Failed(PublishStatus.Transient, "Shopify answered HTTP 200 without data or errors.");
                }
                await DelayAsync(Backoff.Delay(transients, TransientBackoffBase, TransientBackoffCap, Random.Shared), cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (requested is { } actualRequest && actualRequest > estimatedCost)
            {
                // Shopify priced the query higher than the connector's estimate: estimate higher from
                // now on so the bucket wait matches what Shopify will charge.
                _costFactors[operation] = Math.Min(10, actualRequest / estimatedCost);
            }
            return new GraphQlResult(PublishStatus.Accepted, root, null);
        }
    }

    private TokenBucket Bucket()
    {
        lock (_bucketGate)
        {
            return _bucket;
        }
    }

    private async Task<double> TakeAsync(double cost, CancellationToken cancellationToken)
    {
        var bucket = Bucket();
        var take = Math.Min(cost, bucket.Capacity);
        await bucket.TakeAsync(take, cancellationToken).ConfigureAwait(false);
        lock (_bucketGate)
        {
            _inFlightCost += take;
        }
        return take;
    }

    private void Release(double taken)
    {
        lock (_bucketGate)
        {
            _inFlightCost = Math.Max(0, _inFlightCost - taken);
        }
    }

    /// <summary>
    /// Aligns the bucket with <c>extensions.cost.throttleStatus</c> (Shopify's count wins, minus
    /// what this connector has in flight and Shopify has not yet charged), adopting Shopify's
    /// bucket size and restore rate. Returns the requested query cost Shopify reported.
    /// </summary>
    private double? ObserveCost(JsonElement root)
    {
        var cost = Path(root, "extensions", "cost");
        if (cost.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        var requested = NumberOf(cost, "requestedQueryCost");
        var status = Path(cost, "throttleStatus");
        if (NumberOf(status, "maximumAvailable") is { } maximum && NumberOf(status, "currentlyAvailable") is { } current)
        {
            var restore = NumberOf(status, "restoreRate") is { } restoreRate && restoreRate > 0 ? restoreRate : (double?)null;
            lock (_bucketGate)
            {
                if (maximum >= 1 && Math.Abs(maximum - _bucket.Capacity) >= 1)
                {
                    _bucket = new TokenBucket(maximum, restore ?? _bucket.RefillPerSecond, _context.Time);
                }
                _bucket.Observe(Math.Max(0, current - _inFlightCost), restore);
            }
        }
        return requested;
    }

    private static (bool Throttled, PublishStatus Status, string Text) ClassifyErrors(JsonElement errors)
    {
        var throttled = false;
        var transient = false;
        var texts = new List<string>();
        foreach (var error in errors.EnumerateArray())
        {
            var message = error.ValueKind == JsonValueKind.Object ? StringOf(error, "message") ?? "" : error.ToString();
            var code = Path(error, "extensions", "code") is { ValueKind: JsonValueKind.String } c ? c.GetString() : null;
            throttled |= code == "THROTTLED" || (code is null && message == "Throttled");
            transient |= code is "INTERNAL_SERVER_ERROR" or "SERVICE_UNAVAILABLE" or "TIMEOUT";
            texts.Add(code is null ? message : $"{code}: {message}");
        }
        return (throttled, transient ? PublishStatus.Transient : PublishStatus.Permanent, Truncate(string.Join("; ", texts)));
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        delay <= TimeSpan.Zero ? Task.CompletedTask : Task.Delay(delay, _context.Time, cancellationToken);

    /// <summary>Reads at most <paramref name="bytesMax"/> bytes of a body; larger bodies throw <see cref="InvalidDataException"/>.</summary>
    internal static async Task<byte[]> ReadBoundedAsync(HttpContent content, int bytesMax, CancellationToken cancellationToken) =>
        await BoundedBody.ReadAsync(content, bytesMax, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidDataException($"the answer is larger than {bytesMax} bytes.");

    /// <summary>The error text of a Shopify answer: its <c>errors</c> (string, list or object) or the OAuth error, else the body.</summary>
    internal static string ErrorText(byte[] body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("errors", out var errors))
                {
                    return errors.ValueKind switch
                    {
                        JsonValueKind.String => Truncate(errors.GetString() ?? ""),
                        JsonValueKind.Array => ClassifyErrors(errors).Text,
                        _ => Truncate(errors.GetRawText()),
                    };
                }
                if (StringOf(root, "error") is { } oauthError)
                {
                    return Truncate(StringOf(root, "error_description") is { } description ? $"{oauthError}: {description}" : oauthError);
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON (an HTML error page): fall through to the raw text.
        }
        var text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, ErrorTextCharsMax * 4));
        return Truncate(string.Join(' ', text.Split((char[])['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim());
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>Quotes a value for Shopify's search syntax (double quotes, with \ and " escaped).</summary>
    internal static string SearchQuote(string value) => "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static string Truncate(string text) => text.Length <= ErrorTextCharsMax ? text : text[..ErrorTextCharsMax] + "…";

    private static JsonElement Path(JsonElement element, params ReadOnlySpan<string> names)
    {
        foreach (var name in names)
        {
            if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out element))
            {
                return default;
            }
        }
        return element;
    }

    private static double? NumberOf(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var number) ? number : null;

    private static string? StringOf(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static PublishOutcome Outcome(AtsUpdate update, PublishStatus status, string? error) =>
        new(update.Sku, update.Version, status, status == PublishStatus.Accepted ? null : error);

    private static void FailAll(List<Pending> items, PublishOutcome?[] outcomes, PublishStatus status, string? error)
    {
        foreach (var item in items)
        {
            outcomes[item.Index] = Outcome(item.Update, status, error);
        }
    }

    /// <summary>One update on its way: where it goes in the outcome list, and what the connector learned about its SKU.</summary>
    private sealed class Pending(int index, AtsUpdate update)
    {
        public int Index { get; } = index;
        public AtsUpdate Update { get; } = update;
        public string? InventoryItemId { get; set; }
        public long? KnownAvailable { get; set; }
        public bool WasStale { get; set; }
    }

    private readonly record struct GraphQlResult(PublishStatus Status, JsonElement Root, string? Error)
    {
        public bool Ok => Status == PublishStatus.Accepted;

        public static GraphQlResult Failed(PublishStatus status, string? error) => new(status, default, error);
    }

    private readonly record struct UserError(string? Code, string Message, int? Index);

    private enum WriteKind
    {
        Accepted,
        Stale,
        NotApplied,
        Failed,
    }

    private readonly record struct WriteResult(WriteKind Kind, PublishStatus Status, string? Error, bool ForgetMapping)
    {
        public static WriteResult Accepted => new(WriteKind.Accepted, PublishStatus.Accepted, null, false);

        public static WriteResult NotApplied => new(WriteKind.NotApplied, PublishStatus.Transient, null, false);

        public static WriteResult Failed(PublishStatus status, string? error) => new(WriteKind.Failed, status, error, false);
    }
}
