using System.Globalization;
using System.Text.Json;
using Truestock.Core;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>A line of an order or a fulfillment the hub can track: it has a SKU the hub can represent.</summary>
internal sealed record ShopifyOrderLine(string LineItemId, string Sku, long Quantity);

/// <summary>The parts of a Shopify order (REST Order resource) the hub uses.</summary>
internal sealed record ShopifyOrder(string Id, string? LocationId, DateTimeOffset? CreatedAt, IReadOnlyList<ShopifyOrderLine> Lines,
    int UntrackedLines, IReadOnlyList<ShopifyFulfillment> Fulfillments);

/// <summary>The parts of a Shopify fulfillment (REST Fulfillment resource) the hub uses.</summary>
internal sealed record ShopifyFulfillment(string Id, string OrderId, string? Status, string? LocationId, DateTimeOffset? CreatedAt,
    IReadOnlyList<ShopifyOrderLine> Lines, int UntrackedLines);

/// <summary>A refunded line (REST Refund resource, <c>refund_line_items</c>).</summary>
internal sealed record ShopifyRefundLine(string Id, string? Sku, long Quantity, string? RestockType, string? LocationId);

/// <summary>The parts of a Shopify refund the hub uses.</summary>
internal sealed record ShopifyRefund(string Id, string OrderId, DateTimeOffset? CreatedAt, IReadOnlyList<ShopifyRefundLine> Lines);

/// <summary>
/// Reads Shopify's REST-shaped webhook payloads (snake_case, numeric ids) into the records above.
/// Shape errors are collected in a <see cref="JsonInput"/>, so they answer 400 (wrong JSON type)
/// or 422 (missing field) exactly like the rest of the API. Lines without a usable SKU are not
/// errors: Shopify has custom items and gift cards the hub never stocks, so they are counted and
/// skipped.
/// </summary>
internal static class ShopifyPayloads
{
    /// <summary>Most line items read from one payload; Shopify orders stay far below it.</summary>
    public const int LinesMax = 10_000;

    public static ShopifyOrder? Order(JsonElement root, JsonInput input)
    {
        var id = Id(root, "id", "id", input, required: true);
        var locationId = Id(root, "location_id", "location_id", input, required: false);
        var createdAt = input.Timestamp(root, "created_at", "created_at", required: false);
        var (lines, untracked) = LineItems(root, "", input);
        var fulfillments = new List<ShopifyFulfillment>();
        if (input.Array(root, "fulfillments", "fulfillments", required: false, 0, LinesMax) is { } list && id is not null)
        {
            var i = 0;
            foreach (var item in list.EnumerateArray())
            {
                var path = $"fulfillments[{i++}]";
                if (input.IsObject(item, path) && Fulfillment(item, input, path + ".", id) is { } f)
                {
                    fulfillments.Add(f);
                }
            }
        }
        return input.HasErrors || id is null ? null : new ShopifyOrder(id, locationId, createdAt, lines, untracked, fulfillments);
    }

    /// <summary>Reads a fulfillment; inside an order payload <paramref name="orderId"/> is the order's and order_id may be absent.</summary>
    public static ShopifyFulfillment? Fulfillment(JsonElement root, JsonInput input, string prefix = "", string? orderId = null)
    {
        var id = Id(root, "id", prefix + "id", input, required: true);
        var ownOrderId = Id(root, "order_id", prefix + "order_id", input, required: orderId is null);
        var status = Text(root, "status", prefix + "status", input);
        var locationId = Id(root, "location_id", prefix + "location_id", input, required: false);
        var createdAt = input.Timestamp(root, "created_at", prefix + "created_at", required: false);
        var (lines, untracked) = LineItems(root, prefix, input);
        var order = ownOrderId ?? orderId;
        return input.HasErrors || id is null || order is null ? null : new ShopifyFulfillment(id, order, status, locationId, createdAt, lines, untracked);
    }

    /// <summary>
    /// Reads <c>line_items</c> (of an order or a fulfillment): tracked lines with a SKU and a
    /// positive quantity, and how many lines the hub does not track (no SKU, gift cards).
    /// </summary>
    private static (List<ShopifyOrderLine> Lines, int Untracked) LineItems(JsonElement root, string prefix, JsonInput input)
    {
        var lines = new List<ShopifyOrderLine>();
        var untracked = 0;
        if (input.Array(root, "line_items", prefix + "line_items", required: true, 0, LinesMax) is { } array)
        {
            var i = 0;
            foreach (var item in array.EnumerateArray())
            {
                var path = $"{prefix}line_items[{i++}]";
                if (!input.IsObject(item, path))
                {
                    continue;
                }
                var lineId = Id(item, "id", path + ".id", input, required: true);
                var quantity = input.Long(item, "quantity", path + ".quantity", required: true, 0, Limits.QuantityMax);
                var sku = Sku(item, path + ".sku", input);
                if (lineId is null || quantity is null)
                {
                    continue;
                }
                if (sku is null || Bool(item, "gift_card", path + ".gift_card", input))
                {
                    untracked++;
                }
                else if (quantity > 0)
                {
                    lines.Add(new ShopifyOrderLine(lineId, sku, quantity.Value));
                }
            }
        }
        return (lines, untracked);
    }

    public static ShopifyRefund? Refund(JsonElement root, JsonInput input)
    {
        var id = Id(root, "id", "id", input, required: true);
        var orderId = Id(root, "order_id", "order_id", input, required: true);
        var createdAt = input.Timestamp(root, "processed_at", "processed_at", required: false)
            ?? input.Timestamp(root, "created_at", "created_at", required: false);
        var lines = new List<ShopifyRefundLine>();
        if (input.Array(root, "refund_line_items", "refund_line_items", required: true, 0, LinesMax) is { } array)
        {
            var i = 0;
            foreach (var item in array.EnumerateArray())
            {
                var path = $"refund_line_items[{i++}]";
                if (!input.IsObject(item, path))
                {
                    continue;
                }
                var lineId = Id(item, "id", path + ".id", input, required: true);
                var quantity = input.Long(item, "quantity", path + ".quantity", required: true, 0, Limits.QuantityMax);
                var restockType = Text(item, "restock_type", path + ".restock_type", input);
                var locationId = Id(item, "location_id", path + ".location_id", input, required: false);
                string? sku = null;
                if (item.TryGetProperty("line_item", out var lineItem) && lineItem.ValueKind != JsonValueKind.Null
                    && input.IsObject(lineItem, path + ".line_item")
                    && !Bool(lineItem, "gift_card", path + ".line_item.gift_card", input))
                {
                    sku = Sku(lineItem, path + ".line_item.sku", input);
                }
                if (lineId is not null && quantity is not null)
                {
                    lines.Add(new ShopifyRefundLine(lineId, sku, quantity.Value, restockType, locationId));
                }
            }
        }
        return input.HasErrors || id is null || orderId is null ? null : new ShopifyRefund(id, orderId, createdAt, lines);
    }

    /// <summary>
    /// A Shopify id: a positive number in REST payloads; a digit string or a GraphQL global id
    /// (gid://shopify/Order/123) is accepted too, so that either serialisation maps to the same hub ids.
    /// </summary>
    private static string? Id(JsonElement obj, string name, string path, JsonInput input, bool required)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            if (required)
            {
                input.Invalid(path, "is required.");
            }
            return null;
        }
        switch (v.ValueKind)
        {
            case JsonValueKind.Number:
                if (v.TryGetInt64(out var n) && n > 0)
                {
                    return n.ToString(CultureInfo.InvariantCulture);
                }
                input.Invalid(path, "must be a positive whole number.");
                return null;
            case JsonValueKind.String:
                var s = v.GetString()!;
                var digits = s.StartsWith("gid://shopify/", StringComparison.Ordinal) ? s[(s.LastIndexOf('/') + 1)..] : s;
                if (digits.Length is > 0 and <= 19 && digits.All(char.IsAsciiDigit)
                    && long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed > 0)
                {
                    // Canonical digits, so "0042" and 42 name the same order.
                    return parsed.ToString(CultureInfo.InvariantCulture);
                }
                input.Invalid(path, "must be a Shopify id (digits, or gid://shopify/Type/digits).");
                return null;
            default:
                input.Malformed(path, "must be a number or a string.");
                return null;
        }
    }

    /// <summary>A SKU the hub can represent, or null for none (null, empty, or beyond the hub's SKU rules).</summary>
    private static string? Sku(JsonElement obj, string path, JsonInput input)
    {
        if (!obj.TryGetProperty("sku", out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (v.ValueKind != JsonValueKind.String)
        {
            input.Malformed(path, "must be a string or null.");
            return null;
        }
        // SKUs are opaque and case-sensitive, so the text is kept as it is; blank means none.
        var sku = v.GetString()!;
        return !string.IsNullOrWhiteSpace(sku) && JsonInput.IsSku(sku) ? sku : null;
    }

    private static string? Text(JsonElement obj, string name, string path, JsonInput input)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (v.ValueKind != JsonValueKind.String)
        {
            input.Malformed(path, "must be a string or null.");
            return null;
        }
        return v.GetString();
    }

    private static bool Bool(JsonElement obj, string name, string path, JsonInput input)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return false;
        }
        if (v.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            input.Malformed(path, "must be true or false.");
            return false;
        }
        return v.GetBoolean();
    }
}
