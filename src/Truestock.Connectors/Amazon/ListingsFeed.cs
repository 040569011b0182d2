using System.IO.Compression;
using System.Text.Json;

namespace Truestock.Connectors.Amazon;

/// <summary>One issue of a JSON_LISTINGS_FEED processing report.</summary>
internal sealed record FeedIssue(int? MessageId, string? Code, string Severity, string Message);

/// <summary>What the connector needs from a processing report: issues per message and feed-level issues.</summary>
internal sealed record FeedReport(IReadOnlyDictionary<int, List<FeedIssue>> ByMessage, IReadOnlyList<FeedIssue> FeedLevel);

/// <summary>
/// The JSON_LISTINGS_FEED wire format (listings-feed-schema-v2 and
/// listings-feed-processing-report-schema-v2): writes the feed document and reads the report.
/// </summary>
internal static class ListingsFeed
{
    /// <summary>The content type given to createFeedDocument and used for the upload.</summary>
    public const string ContentType = "application/json; charset=UTF-8";

    /// <summary>The JSON Patch path of the listing's available quantity.</summary>
    public const string FulfillmentAvailabilityPath = "/attributes/fulfillment_availability";

    /// <summary>Writes the feed: one PATCH message per update, messageId = position + 1.</summary>
    public static byte[] Build(AmazonSettings settings, IReadOnlyList<AtsUpdate> updates)
    {
        using var stream = new MemoryStream(256 + (updates.Count * 260));
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("header");
            writer.WriteString("sellerId", settings.SellerId);
            writer.WriteString("version", "2.0");
            writer.WriteString("issueLocale", settings.IssueLocale);
            writer.WriteEndObject();
            writer.WriteStartArray("messages");
            for (var i = 0; i < updates.Count; i++)
            {
                writer.WriteStartObject();
                writer.WriteNumber("messageId", i + 1);
                writer.WriteString("sku", updates[i].Sku);
                writer.WriteString("operationType", "PATCH");
                writer.WriteString("productType", settings.ProductType);
                writer.WritePropertyName("patches");
                WritePatches(writer, settings, updates[i].Quantity);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>Writes the body of a patchListingsItem request.</summary>
    public static byte[] BuildPatchRequest(AmazonSettings settings, long quantity)
    {
        using var stream = new MemoryStream(256);
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteString("productType", settings.ProductType);
            writer.WritePropertyName("patches");
            WritePatches(writer, settings, quantity);
            writer.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>[{"op":"replace","path":"/attributes/fulfillment_availability","value":[{fulfillment_channel_code, quantity}]}]</summary>
    private static void WritePatches(Utf8JsonWriter writer, AmazonSettings settings, long quantity)
    {
        writer.WriteStartArray();
        writer.WriteStartObject();
        writer.WriteString("op", "replace");
        writer.WriteString("path", FulfillmentAvailabilityPath);
        writer.WriteStartArray("value");
        writer.WriteStartObject();
        writer.WriteString("fulfillment_channel_code", settings.FulfillmentChannelCode);
        writer.WriteNumber("quantity", Math.Max(0, quantity));
        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.WriteEndArray();
    }

    /// <summary>Decompresses a GZIP document within a size bound.</summary>
    public static byte[] Gunzip(byte[] compressed, int bytesMax)
    {
        using var input = new MemoryStream(compressed);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = gzip.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (output.Length + read > bytesMax)
            {
                throw new ResponseTooLargeException();
            }
            output.Write(chunk, 0, read);
        }
        return output.ToArray();
    }

    /// <summary>Reads a processing report; null when it is not one.</summary>
    public static FeedReport? ParseReport(byte[] json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("issues", out var issues) || issues.ValueKind != JsonValueKind.Array)
            {
                return null;
            }
            var byMessage = new Dictionary<int, List<FeedIssue>>();
            var feedLevel = new List<FeedIssue>();
            foreach (var issue in issues.EnumerateArray())
            {
                int? messageId = issue.TryGetProperty("messageId", out var id) && id.TryGetInt32(out var number) ? number : null;
                var parsed = new FeedIssue(
                    messageId,
                    SpApiClient.StringOf(issue, "code"),
                    SpApiClient.StringOf(issue, "severity") ?? "ERROR",
                    SpApiClient.StringOf(issue, "message") ?? "(no message)");
                if (messageId is { } key)
                {
                    if (!byMessage.TryGetValue(key, out var list))
                    {
                        byMessage[key] = list = [];
                    }
                    list.Add(parsed);
                }
                else
                {
                    feedLevel.Add(parsed);
                }
            }
            return new FeedReport(byMessage, feedLevel);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>"code: message; code: message" of the ERROR issues, truncated.</summary>
    public static string IssueText(IEnumerable<FeedIssue> issues) =>
        SpApiClient.Truncate(string.Join("; ", issues.Select(i => i.Code is null ? i.Message : $"{i.Code}: {i.Message}")))!;
}
