namespace Truestock.Connectors.Shopify;

/// <summary>What the connector knows about one SKU at the configured location.</summary>
/// <param name="InventoryItemId">The Shopify inventory item GID that carries the SKU.</param>
/// <param name="KnownAvailable">
/// The "available" quantity the connector last saw at Shopify (read by the lookup or written by
/// itself), used as the compare-and-swap value; null when unknown (after an unconfirmed write).
/// </param>
/// <param name="HighestVersion">The highest version Shopify accepted for this SKU from this connector; null when none yet.</param>
internal readonly record struct ShopifySkuEntry(string InventoryItemId, long? KnownAvailable, long? HighestVersion);

/// <summary>
/// A bounded, least-recently-used map from SKU to <see cref="ShopifySkuEntry"/>, so the connector
/// does not search the catalogue again for every publication. Negative answers (unknown SKU,
/// not stocked) are never cached, so a listing the merchant fixes is found on the next publication.
/// Thread-safe.
/// </summary>
internal sealed class ShopifySkuCache
{
    private readonly Lock _gate = new();
    private readonly int _capacity;
    private readonly Dictionary<string, LinkedListNode<(string Sku, ShopifySkuEntry Entry)>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Sku, ShopifySkuEntry Entry)> _order = new();

    public ShopifySkuCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _capacity = capacity;
    }

    /// <summary>Entries held now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _map.Count;
            }
        }
    }

    public bool TryGet(string sku, out ShopifySkuEntry entry)
    {
        lock (_gate)
        {
            if (_map.TryGetValue(sku, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                entry = node.Value.Entry;
                return true;
            }
        }
        entry = default;
        return false;
    }

    /// <summary>Records the lookup's answer, keeping the version already accepted for the SKU.</summary>
    public void SetLookup(string sku, string inventoryItemId, long? knownAvailable) =>
        Update(sku, old => new ShopifySkuEntry(inventoryItemId, knownAvailable, old?.HighestVersion));

    /// <summary>Records a write Shopify accepted.</summary>
    public void SetWritten(string sku, string inventoryItemId, long quantity, long version) =>
        Update(sku, old => new ShopifySkuEntry(inventoryItemId, quantity,
            old?.HighestVersion is { } highest && highest > version ? highest : version));

    /// <summary>Forgets the quantity (a write whose fate is unknown), so the next write reads it first.</summary>
    public void ForgetQuantity(string sku)
    {
        lock (_gate)
        {
            if (_map.TryGetValue(sku, out var node))
            {
                node.Value = (sku, node.Value.Entry with { KnownAvailable = null });
            }
        }
    }

    /// <summary>Forgets the mapping (the inventory item is gone or no longer stocked at the location).</summary>
    public void Remove(string sku)
    {
        lock (_gate)
        {
            if (_map.Remove(sku, out var node))
            {
                _order.Remove(node);
            }
        }
    }

    private void Update(string sku, Func<ShopifySkuEntry?, ShopifySkuEntry> change)
    {
        lock (_gate)
        {
            if (_map.TryGetValue(sku, out var node))
            {
                node.Value = (sku, change(node.Value.Entry));
                _order.Remove(node);
                _order.AddFirst(node);
                return;
            }
            var added = _order.AddFirst((sku, change(null)));
            _map[sku] = added;
            while (_map.Count > _capacity)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value.Sku);
            }
        }
    }
}
