using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Truestock.Connectors.Walmart;

/// <summary>One item's ingestion result from a feed status response (<c>itemDetails.itemIngestionStatus[]</c>).</summary>
/// <param name="Sku">The SKU Walmart reports (decoded).</param>
/// <param name="IngestionStatus">SUCCESS, DATA_ERROR, SYSTEM_ERROR, TIMEOUT_ERROR or INPROGRESS.</param>
/// <param name="Error">Walmart's ingestion errors as "CODE: description" text, or null.</param>
internal sealed record WalmartFeedItem(string Sku, string IngestionStatus, string? Error);

/// <summary>One page of a feed status response (<c>GET /v3/feeds/{feedId}?includeDetails=true</c>).</summary>
/// <param name="FeedStatus">RECEIVED, INPROGRESS, PROCESSED or ERROR.</param>
/// <param name="ItemsReceived">How many items Walmart received in the feed.</param>
/// <param name="Items">This page's item results.</param>
/// <param name="FeedError">The feed-level ingestion errors, or null.</param>
internal sealed record WalmartFeedPage(string FeedStatus, long ItemsReceived, IReadOnlyList<WalmartFeedItem> Items, string? FeedError);

/// <summary>
/// Walmart Marketplace wire format: the JSON the connector sends and the answers it reads.
/// Kept apart from the connector so the HTTP flow reads clearly and the formats are testable.
/// </summary>
internal static class WalmartWire
{
    /// <summary>The inventory feed spec version for feedType=inventory (single ship node).</summary>
    public const string InventoryFeedVersion = "1.4";

    /// <summary>Longest error text an outcome carries.</summary>
    public const int ErrorTextLengthMax = 400;

    /// <summary>Body of <c>PUT /v3/inventory?sku=</c>: <c>{"sku", "quantity": {"unit":"EACH","amount"}}</c>.</summary>
    public static byte[] InventoryItem(string sku, long quantity)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteItem(writer, sku, quantity);
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The feedType=inventory file: <c>{"InventoryHeader":{"version":"1.4"},"Inventory":[...]}</c>.</summary>
    public static byte[] InventoryFeed(IEnumerable<AtsUpdate> updates)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("InventoryHeader");
            writer.WriteString("version", InventoryFeedVersion);
            writer.WriteEndObject();
            writer.WriteStartArray("Inventory");
            foreach (var update in updates)
            {
                WriteItem(writer, update.Sku, update.Quantity);
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads <c>{"access_token", "expires_in"}</c> from the Token API; null when the answer is not usable.</summary>
    public static (string Token, TimeSpan Lifetime)? ReadToken(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("access_token", out var token) || token.ValueKind != JsonValueKind.String
                || string.IsNullOrEmpty(token.GetString()))
            {
                return null;
            }
            var seconds = root.TryGetProperty("expires_in", out var expires) && expires.ValueKind == JsonValueKind.Number
                && expires.TryGetDouble(out var value) && value > 0 ? value : 900;
            return (token.GetString()!, TimeSpan.FromSeconds(seconds));
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Reads <c>{"feedId"}</c> from a feed submission answer; null when absent.</summary>
    public static string? ReadFeedId(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("feedId", out var id) && id.ValueKind == JsonValueKind.String
                && !string.IsNullOrWhiteSpace(id.GetString())
                ? id.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Reads one feed status page; null when the body is not a feed status.</summary>
    public static WalmartFeedPage? ReadFeedPage(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("feedStatus", out var status) || status.ValueKind != JsonValueKind.String)
            {
                return null;
            }
            var received = root.TryGetProperty("itemsReceived", out var count) && count.ValueKind == JsonValueKind.Number
                && count.TryGetInt64(out var n) ? n : 0;
            var items = new List<WalmartFeedItem>();
            if (root.TryGetProperty("itemDetails", out var details) && details.ValueKind == JsonValueKind.Object
                && details.TryGetProperty("itemIngestionStatus", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in list.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.Object
                        || !item.TryGetProperty("sku", out var sku) || sku.ValueKind != JsonValueKind.String)
                    {
                        continue;
                    }
                    var ingestion = item.TryGetProperty("ingestionStatus", out var s) && s.ValueKind == JsonValueKind.String
                        ? s.GetString()! : "UNKNOWN";
                    items.Add(new WalmartFeedItem(sku.GetString()!, ingestion, IngestionErrors(item)));
                }
            }
            return new WalmartFeedPage(status.GetString()!, received, items, IngestionErrors(root));
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Describes a failed answer in Walmart's own words: <c>HTTP 404 CONTENT_NOT_FOUND.GMP_INVENTORY_API: Item not found</c>.
    /// Walmart wraps errors as <c>{"errors":{"error":[...]}}</c>, <c>{"errors":[...]}</c> or <c>{"error":[...]}</c>
    /// depending on the API, so all three are read; other bodies are quoted (bounded).
    /// </summary>
    public static string DescribeError(int status, string body)
    {
        var prefix = string.Create(CultureInfo.InvariantCulture, $"HTTP {status}");
        var errors = GatewayErrors(body);
        var text = errors.Count > 0
            ? $"{prefix} {string.Join("; ", errors)}"
            : string.IsNullOrWhiteSpace(body) ? prefix : $"{prefix}: {body.Trim()}";
        return Bound(text);
    }

    /// <summary>Cuts text to <see cref="ErrorTextLengthMax"/> characters.</summary>
    public static string Bound(string text) =>
        text.Length <= ErrorTextLengthMax ? text : string.Concat(text.AsSpan(0, ErrorTextLengthMax - 1), "…");

    private static void WriteItem(Utf8JsonWriter writer, string sku, long quantity)
    {
        writer.WriteStartObject();
        writer.WriteString("sku", sku);
        writer.WriteStartObject("quantity");
        writer.WriteString("unit", "EACH");
        writer.WriteNumber("amount", quantity);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static List<string> GatewayErrors(string body)
    {
        var result = new List<string>();
        if (string.IsNullOrWhiteSpace(body))
        {
            return result;
        }
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return result;
            }
            if (root.TryGetProperty("errors", out var errors))
            {
                if (errors.ValueKind == JsonValueKind.Object && errors.TryGetProperty("error", out var inner))
                {
                    AddErrors(inner, result);
                }
                else
                {
                    AddErrors(errors, result);
                }
            }
            if (root.TryGetProperty("error", out var error))
            {
                AddErrors(error, result);
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's HTML page, say): the caller quotes the body instead.
        }
        return result;
    }

    private static void AddErrors(JsonElement element, List<string> into)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray().Take(3))
            {
                AddErrors(item, into);
            }
            return;
        }
        if (element.ValueKind == JsonValueKind.Object)
        {
            var code = Text(element, "code");
            var description = Text(element, "description") ?? Text(element, "info");
            var field = Text(element, "field");
            var line = (code, description) switch
            {
                (not null, not null) => $"{code}: {description}",
                (not null, null) => code,
                (null, not null) => description,
                _ => null,
            };
            if (line is not null)
            {
                into.Add(field is not null && !line.Contains(field, StringComparison.Ordinal) ? $"{line} (field {field})" : line);
            }
        }
        else if (element.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(element.GetString()))
        {
            into.Add(element.GetString()!);
        }
    }

    private static string? IngestionErrors(JsonElement owner)
    {
        if (!owner.TryGetProperty("ingestionErrors", out var errors) || errors.ValueKind != JsonValueKind.Object
            || !errors.TryGetProperty("ingestionError", out var list))
        {
            return null;
        }
        var lines = new List<string>();
        var entries = list.ValueKind == JsonValueKind.Array ? list.EnumerateArray().Take(3).ToList()
            : list.ValueKind == JsonValueKind.Object ? [list] : [];
        foreach (var entry in entries)
        {
            if (entry.ValueKind != JsonValueKind.Object)
            {
                continue;
            }
            var builder = new StringBuilder();
            var type = Text(entry, "type");
            var code = Text(entry, "code");
            var description = Text(entry, "description");
            if (type is not null)
            {
                builder.Append(type).Append(' ');
            }
            if (code is not null)
            {
                builder.Append(code).Append(": ");
            }
            builder.Append(description ?? "no description");
            lines.Add(builder.ToString());
        }
        return lines.Count == 0 ? null : Bound(string.Join("; ", lines));
    }

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
        && !string.IsNullOrWhiteSpace(value.GetString()) ? value.GetString() : null;
}
