using System.Globalization;
using System.Text.Json;

namespace Truestock.Connectors.Amazon;

/// <summary>
/// The Amazon connector's settings, parsed and validated from the channel's connector JSON.
/// Defaults are Amazon's documented values (see docs/connectors/amazon.md for the source of each).
/// </summary>
internal sealed record AmazonSettings
{
    /// <summary>The real Login with Amazon token endpoint (the same for every SP-API region).</summary>
    public const string TokenUrlDefault = "https://api.amazon.com/auth/o2/token";

    /// <summary>The most messages one JSON_LISTINGS_FEED takes (raised from 10,000 to 25,000 in May 2025).</summary>
    public const int FeedMessagesLimit = 25_000;

    /// <summary>The most marketplaces one createFeed request names (CreateFeedSpecification.marketplaceIds maxItems).</summary>
    public const int MarketplaceIdsMax = 25;

    public required string SellerId { get; init; }
    public required IReadOnlyList<string> MarketplaceIds { get; init; }
    public required Uri BaseUrl { get; init; }
    public required Uri TokenUrl { get; init; }
    public required string Credentials { get; init; }
    public string ProductType { get; init; } = "PRODUCT";
    public string FulfillmentChannelCode { get; init; } = "DEFAULT";
    public string IssueLocale { get; init; } = "en_US";

    /// <summary>The most messages the connector puts into one feed (and so its BatchSizeMax).</summary>
    public int FeedMessagesMax { get; init; } = 10_000;

    /// <summary>Non-urgent batches smaller than this go per item (a feed costs minutes and scarce createFeed budget).</summary>
    public int FeedMinMessages { get; init; } = 50;

    public TimeSpan FeedPollInterval { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan FeedWaitMax { get; init; } = TimeSpan.FromMinutes(5);
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
    public int ThrottleRetriesMax { get; init; } = 3;
    public int TransientRetriesMax { get; init; } = 1;
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>patchListingsItem: 5 requests per second per account-application pair, burst 5.</summary>
    public double PatchRatePerSecond { get; init; } = 5;
    public int PatchBurst { get; init; } = 5;

    /// <summary>createFeed: 0.0083 requests per second; JSON_LISTINGS_FEED: five submissions per five minutes. The stricter of both.</summary>
    public double FeedRatePerSecond { get; init; } = 0.0083;
    public int FeedBurst { get; init; } = 5;

    /// <summary>The longest one call spends sending non-urgent items one by one when no feed is sent.</summary>
    public TimeSpan PerItemTimeMax { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The longest one call spends sending urgent items one by one; urgent items beyond that go into the feed.</summary>
    public TimeSpan UrgentTimeMax { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Per-item requests in flight at once (the token bucket still sets the pace).</summary>
    public int PatchConcurrencyMax { get; init; } = 4;

    private static readonly Dictionary<string, string> RegionEndpoints = new(StringComparer.Ordinal)
    {
        ["na"] = "https://sellingpartnerapi-na.amazon.com/",
        ["eu"] = "https://sellingpartnerapi-eu.amazon.com/",
        ["fe"] = "https://sellingpartnerapi-fe.amazon.com/",
    };

    /// <summary>Parses the settings; returns null and an error message naming the field when they are invalid.</summary>
    public static AmazonSettings? Parse(JsonElement json, out string? error)
    {
        error = null;
        if (json.ValueKind != JsonValueKind.Object)
        {
            error = "the amazon connector settings must be a JSON object.";
            return null;
        }

        var sellerId = RequiredString(json, "sellerId", 64, ref error);
        var credentials = RequiredString(json, "credentials", 128, ref error);
        var marketplaceIds = MarketplaceIdList(json, ref error);
        var baseUrl = BaseUrlOf(json, ref error);
        var tokenUrl = OptionalUrl(json, "tokenUrl", TokenUrlDefault, ref error);
        var productType = OptionalString(json, "productType", "PRODUCT", 64, ref error);
        var channelCode = OptionalString(json, "fulfillmentChannelCode", "DEFAULT", 64, ref error);
        var issueLocale = OptionalString(json, "issueLocale", "en_US", 16, ref error);
        var feedMessagesMax = OptionalInt(json, "feedMessagesMax", 10_000, 1, FeedMessagesLimit, ref error);
        var feedMinMessages = OptionalInt(json, "feedMinMessages", 50, 1, FeedMessagesLimit, ref error);
        var pollSeconds = OptionalNumber(json, "feedPollSeconds", 30, 0.01, 600, ref error);
        var waitSeconds = OptionalNumber(json, "feedWaitSecondsMax", 300, 0.1, 3600, ref error);
        var timeoutSeconds = OptionalNumber(json, "timeoutSeconds", 30, 0.1, 300, ref error);
        var throttleRetries = OptionalInt(json, "throttleRetriesMax", 3, 0, 10, ref error);
        var transientRetries = OptionalInt(json, "transientRetriesMax", 1, 0, 5, ref error);
        var retryBaseMs = OptionalNumber(json, "retryBaseDelayMilliseconds", 1000, 1, 60_000, ref error);
        var patchRate = OptionalNumber(json, "patchRatePerSecond", 5, 0.01, 1000, ref error);
        var patchBurst = OptionalInt(json, "patchBurst", 5, 1, 1000, ref error);
        var feedRate = OptionalNumber(json, "feedRatePerSecond", 0.0083, 0.0001, 100, ref error);
        var feedBurst = OptionalInt(json, "feedBurst", 5, 1, 100, ref error);
        var perItemSeconds = OptionalNumber(json, "perItemSecondsMax", 5, 0, 300, ref error);
        var urgentSeconds = OptionalNumber(json, "urgentSecondsMax", 60, 0, 600, ref error);
        var concurrency = OptionalInt(json, "patchConcurrencyMax", 4, 1, 32, ref error);

        if (error is not null)
        {
            return null;
        }
        if (!IsProductTypeName(productType))
        {
            error = $"\"productType\" must be an Amazon product type name (upper-case letters, digits and '_'), e.g. \"PRODUCT\"; got '{productType}'.";
            return null;
        }
        return new AmazonSettings
        {
            SellerId = sellerId!,
            Credentials = credentials!,
            MarketplaceIds = marketplaceIds!,
            BaseUrl = baseUrl!,
            TokenUrl = tokenUrl!,
            ProductType = productType,
            FulfillmentChannelCode = channelCode,
            IssueLocale = issueLocale,
            FeedMessagesMax = feedMessagesMax,
            FeedMinMessages = feedMinMessages,
            FeedPollInterval = TimeSpan.FromSeconds(pollSeconds),
            FeedWaitMax = TimeSpan.FromSeconds(waitSeconds),
            Timeout = TimeSpan.FromSeconds(timeoutSeconds),
            ThrottleRetriesMax = throttleRetries,
            TransientRetriesMax = transientRetries,
            RetryBaseDelay = TimeSpan.FromMilliseconds(retryBaseMs),
            PatchRatePerSecond = patchRate,
            PatchBurst = patchBurst,
            FeedRatePerSecond = feedRate,
            FeedBurst = feedBurst,
            PerItemTimeMax = TimeSpan.FromSeconds(perItemSeconds),
            UrgentTimeMax = TimeSpan.FromSeconds(urgentSeconds),
            PatchConcurrencyMax = concurrency,
        };
    }

    private static bool IsProductTypeName(string value) =>
        value.Length > 0 && value.All(c => c is (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_');

    private static string? RequiredString(JsonElement json, string name, int lengthMax, ref string? error)
    {
        if (error is not null)
        {
            return null;
        }
        if (!json.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(value.GetString()))
        {
            error = $"\"{name}\" is required and must be a non-empty string.";
            return null;
        }
        var text = value.GetString()!;
        if (text.Length > lengthMax)
        {
            error = $"\"{name}\" must be at most {lengthMax} characters.";
            return null;
        }
        return text;
    }

    private static string OptionalString(JsonElement json, string name, string fallback, int lengthMax, ref string? error)
    {
        if (error is not null || !json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(value.GetString()) || value.GetString()!.Length > lengthMax)
        {
            error = $"\"{name}\" must be a non-empty string of at most {lengthMax} characters (default \"{fallback}\").";
            return fallback;
        }
        return value.GetString()!;
    }

    private static List<string>? MarketplaceIdList(JsonElement json, ref string? error)
    {
        if (error is not null)
        {
            return null;
        }
        if (!json.TryGetProperty("marketplaceIds", out var value) || value.ValueKind != JsonValueKind.Array)
        {
            error = "\"marketplaceIds\" is required and must be an array of Amazon marketplace ids, e.g. [\"ATVPDKIKX0DER\"].";
            return null;
        }
        var ids = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            var id = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            if (string.IsNullOrWhiteSpace(id) || id.Length > 32 || !id.All(char.IsAsciiLetterOrDigit))
            {
                error = "\"marketplaceIds\" must hold marketplace ids (letters and digits, at most 32 characters), e.g. \"ATVPDKIKX0DER\".";
                return null;
            }
            if (!ids.Contains(id, StringComparer.Ordinal))
            {
                ids.Add(id);
            }
        }
        if (ids.Count is 0 or > MarketplaceIdsMax)
        {
            error = $"\"marketplaceIds\" must name between 1 and {MarketplaceIdsMax} marketplaces.";
            return null;
        }
        return ids;
    }

    private static Uri? BaseUrlOf(JsonElement json, ref string? error)
    {
        if (error is not null)
        {
            return null;
        }
        if (json.TryGetProperty("baseUrl", out var baseUrl) && baseUrl.ValueKind != JsonValueKind.Null)
        {
            return OptionalUrl(json, "baseUrl", RegionEndpoints["na"], ref error);
        }
        if (!json.TryGetProperty("region", out var region) || region.ValueKind == JsonValueKind.Null)
        {
            return new Uri(RegionEndpoints["na"]);
        }
        var name = region.ValueKind == JsonValueKind.String ? region.GetString() : null;
        if (name is null || !RegionEndpoints.TryGetValue(name, out var endpoint))
        {
            error = "\"region\" must be one of \"na\", \"eu\", \"fe\" (or give \"baseUrl\").";
            return null;
        }
        return new Uri(endpoint);
    }

    private static Uri? OptionalUrl(JsonElement json, string name, string fallback, ref string? error)
    {
        if (error is not null)
        {
            return null;
        }
        if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return new Uri(fallback);
        }
        if (value.ValueKind != JsonValueKind.String
            || !Uri.TryCreate(value.GetString(), UriKind.Absolute, out var uri)
            || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
            || !string.IsNullOrEmpty(uri.Query))
        {
            error = $"\"{name}\" must be an absolute http(s) URL without a query (default {fallback}).";
            return null;
        }
        // A trailing slash makes relative paths append to the base instead of replacing its last segment.
        return name == "baseUrl" && !uri.AbsoluteUri.EndsWith('/') ? new Uri(uri.AbsoluteUri + "/") : uri;
    }

    private static int OptionalInt(JsonElement json, string name, int fallback, int min, int max, ref string? error)
    {
        if (error is not null || !json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var number) || number < min || number > max)
        {
            error = $"\"{name}\" must be an integer from {min} to {max} (default {fallback}).";
            return fallback;
        }
        return number;
    }

    private static double OptionalNumber(JsonElement json, string name, double fallback, double min, double max, ref string? error)
    {
        if (error is not null || !json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || double.IsNaN(number) || number < min || number > max)
        {
            error = string.Create(CultureInfo.InvariantCulture, $"\"{name}\" must be a number from {min} to {max} (default {fallback}).");
            return fallback;
        }
        return number;
    }
}
