using System.Text.Json;
using Truestock.Core;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>One item of a page that passed the wire rules: a stock level of the source.</summary>
/// <param name="Index">Position of the item in its page (0-based).</param>
/// <param name="Sku">SKU, as the hub holds it.</param>
/// <param name="Location">The source's location code, or null when the item names none.</param>
/// <param name="OnHand">Units on hand at the source.</param>
/// <param name="CountedAt">When the source counted them; null means as of the page's asOf.</param>
internal sealed record PolledItem(int Index, string Sku, string? Location, long OnHand, DateTimeOffset? CountedAt);

/// <summary>A problem with one item; the item is skipped and the others of its page still apply.</summary>
/// <param name="Index">Position of the item in its page (0-based).</param>
/// <param name="Sku">The item's SKU, when it could be read.</param>
/// <param name="Location">The item's location code, when it could be read.</param>
/// <param name="Type">Problem type slug: invalid-item, unmapped-location, future-timestamp, unknown-location, or an engine rejection.</param>
/// <param name="Detail">What is wrong.</param>
internal sealed record PolledItemError(int Index, string? Sku, string? Location, string Type, string Detail);

/// <summary>A page that passed the wire rules.</summary>
/// <param name="AsOf">When the page's levels were read at the source.</param>
/// <param name="Items">The items that passed the item rules.</param>
/// <param name="Errors">The items that did not, with why.</param>
/// <param name="ItemCount">All items of the page, valid or not.</param>
/// <param name="Next">The cursor of the next page, or null on the last page.</param>
internal sealed record PolledPage(DateTimeOffset AsOf, IReadOnlyList<PolledItem> Items, IReadOnlyList<PolledItemError> Errors, int ItemCount, string? Next);

/// <summary>
/// The wire format of a polling source's page (docs/ingestion.md, "Polling sources"):
/// <c>{ "asOf", "items": [ { "sku", "location"?, "onHand", "countedAt"? } ], "next"? }</c>. A page that
/// breaks the format is refused whole; an item that breaks the item rules is skipped and reported. The
/// fields are checked with <see cref="JsonInput"/>, the rules of POST /v1/events, so that what a
/// source may send is what a client may send.
/// </summary>
internal static class PollingWire
{
    /// <summary>Longest cursor accepted from a source.</summary>
    public const int CursorLengthMax = 1024;

    /// <summary>Longest location code accepted from a source.</summary>
    public const int LocationCodeLengthMax = Limits.TextLengthMax;

    /// <summary>Deepest JSON accepted; a page needs four levels.</summary>
    private const int DepthMax = 16;

    /// <summary>Parses one page body; returns the page, or null with the reason in <paramref name="problem"/>.</summary>
    public static PolledPage? Parse(ReadOnlyMemory<byte> body, int pageSizeMax, out string? problem)
    {
        problem = null;
        if (body.IsEmpty)
        {
            problem = "The body is empty; a page is a JSON object.";
            return null;
        }
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
        {
            problem = "The body is not valid UTF-8.";
            return null;
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = DepthMax });
        }
        catch (JsonException ex)
        {
            problem = $"The body is not valid JSON: {ex.Message}";
            return null;
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = "The body must be a JSON object with asOf and items.";
                return null;
            }
            var input = new JsonInput();
            var asOf = input.Timestamp(root, "asOf", "asOf", required: true);
            var items = input.Array(root, "items", "items", required: true, 0, pageSizeMax);
            var next = input.String(root, "next", "next", required: false, CursorLengthMax);
            if (input.HasErrors || asOf is null || items is null)
            {
                problem = input.Describe() ?? "The page lacks asOf or items.";
                return null;
            }
            var parsed = new List<PolledItem>(items.Value.GetArrayLength());
            var errors = new List<PolledItemError>();
            var index = 0;
            foreach (var item in items.Value.EnumerateArray())
            {
                if (ParseItem(item, index, out var error) is { } ok)
                {
                    parsed.Add(ok);
                }
                else
                {
                    errors.Add(error!);
                }
                index++;
            }
            return new PolledPage(asOf.Value, parsed, errors, index, next);
        }
    }

    private static PolledItem? ParseItem(JsonElement item, int index, out PolledItemError? error)
    {
        error = null;
        if (item.ValueKind != JsonValueKind.Object)
        {
            error = new PolledItemError(index, null, null, "invalid-item", $"items[{index}] must be an object.");
            return null;
        }
        var input = new JsonInput();
        var sku = input.Sku(item, "sku", "sku");
        var location = input.String(item, "location", "location", required: false, LocationCodeLengthMax);
        var onHand = input.Long(item, "onHand", "onHand", required: true, 0, Limits.QuantityMax);
        var countedAt = input.Timestamp(item, "countedAt", "countedAt", required: false);
        if (input.HasErrors || sku is null || onHand is null)
        {
            error = new PolledItemError(index, sku, location, "invalid-item", input.Describe() ?? "sku and onHand are required.");
            return null;
        }
        return new PolledItem(index, sku, location, onHand.Value, countedAt);
    }
}
