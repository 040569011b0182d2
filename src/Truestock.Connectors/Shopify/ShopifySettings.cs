using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Truestock.Connectors.Shopify;

/// <summary>
/// The Shopify connector's settings, read from the channel's connector JSON (see
/// docs/connectors/shopify.md for every field, its default and its limits).
/// </summary>
internal sealed partial record ShopifySettings(
    Uri BaseUrl,
    Uri TokenUrl,
    string ApiVersion,
    int ApiVersionNumber,
    string? LocationId,
    string? LocationName,
    string? CredentialSet,
    string Reason,
    bool CompareAndSwap,
    int BatchSize,
    int LookupBatchSize,
    double BucketSize,
    double RestoreRate,
    TimeSpan Timeout,
    int SkuCacheSize)
{
    /// <summary>The Admin API version used when the settings name none (the newest stable version when this was written).</summary>
    public const string ApiVersionDefault = "2026-10";

    /// <summary>The oldest version with <c>inventorySetQuantities</c> (it arrived in 2024-07).</summary>
    public const int ApiVersionMin = 2024_07;

    /// <summary>From this version on, <c>changeFromQuantity</c> exists and <c>@idempotent</c> is accepted.</summary>
    public const int ApiVersionChangeFrom = 2026_01;

    /// <summary>From this version on, <c>changeFromQuantity</c> and <c>@idempotent</c> are mandatory.</summary>
    public const int ApiVersionMandatoryCas = 2026_04;

    /// <summary>Shopify rejects input arrays longer than this, on every API.</summary>
    public const int InputArrayItemsMax = 250;

    /// <summary>The reasons <c>inventorySetQuantities</c> accepts (Shopify's "possible reasons" list).</summary>
    public static IReadOnlySet<string> Reasons { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
        "movement_received", "movement_canceled", "other", "promotion", "quality_control", "received",
        "reservation_created", "reservation_deleted", "reservation_updated", "restock", "safety_stock", "shrinkage",
    };

    private const int BatchSizeDefault = InputArrayItemsMax;
    private const int LookupBatchSizeDefault = 50;
    private const double BucketSizeDefault = 1000;
    private const double RestoreRateDefault = 100;
    private const double TimeoutSecondsDefault = 30;
    private const double TimeoutSecondsMin = 0.1;
    private const double TimeoutSecondsMax = 300;
    private const int SkuCacheSizeDefault = 100_000;
    private const int SkuCacheSizeMax = 10_000_000;

    /// <summary>True when this version speaks the <c>changeFromQuantity</c> / <c>@idempotent</c> dialect.</summary>
    public bool UsesChangeFrom => ApiVersionNumber >= ApiVersionChangeFrom;

    /// <summary>Returns a message naming the offending field, or null when the settings are valid.</summary>
    public static string? Parse(JsonElement json, out ShopifySettings? settings)
    {
        settings = null;
        if (json.ValueKind != JsonValueKind.Object)
        {
            return "must be a JSON object.";
        }

        // Every field is read (no short-circuit), so all out values are assigned; the first error wins.
        var errors = new[]
        {
            ReadString(json, "shop", out var shop),
            ReadString(json, "baseUrl", out var baseUrlText),
            ReadString(json, "tokenUrl", out var tokenUrlText),
            ReadString(json, "apiVersion", out var apiVersion),
            ReadString(json, "locationId", out var locationId),
            ReadString(json, "locationName", out var locationName),
            ReadString(json, "credentials", out var credentials),
            ReadString(json, "reason", out var reason),
            ReadBool(json, "compareAndSwap", true, out var compareAndSwap),
            ReadInt(json, "batchSize", 1, InputArrayItemsMax, BatchSizeDefault, out var batchSize),
            ReadInt(json, "lookupBatchSize", 1, InputArrayItemsMax, LookupBatchSizeDefault, out var lookupBatchSize),
            ReadNumber(json, "bucketSize", 50, 1_000_000, BucketSizeDefault, out var bucketSize),
            ReadNumber(json, "restoreRate", 1, 1_000_000, RestoreRateDefault, out var restoreRate),
            ReadNumber(json, "timeoutSeconds", TimeoutSecondsMin, TimeoutSecondsMax, TimeoutSecondsDefault, out var timeoutSeconds),
            ReadInt(json, "skuCacheSize", 1, SkuCacheSizeMax, SkuCacheSizeDefault, out var skuCacheSize),
        };
        var error = Array.Find(errors, e => e is not null);
        if (error is not null)
        {
            return error;
        }

        Uri baseUrl;
        if (baseUrlText is not null)
        {
            if (!TryHttpUrl(baseUrlText, out baseUrl))
            {
                return "\"baseUrl\" must be an absolute http(s) URL such as \"https://acme.myshopify.com/\".";
            }
        }
        else if (shop is null)
        {
            return "needs \"shop\" (the myshopify.com subdomain, e.g. \"acme\") or \"baseUrl\".";
        }
        else
        {
            var subdomain = shop.EndsWith(".myshopify.com", StringComparison.OrdinalIgnoreCase) ? shop[..^".myshopify.com".Length] : shop;
            if (!ShopPattern().IsMatch(subdomain))
            {
                return "\"shop\" must be the store's myshopify.com subdomain (letters, digits and '-', e.g. \"acme\" or \"acme.myshopify.com\").";
            }
            baseUrl = new Uri($"https://{subdomain.ToLowerInvariant()}.myshopify.com/");
        }
        if (!baseUrl.AbsoluteUri.EndsWith('/'))
        {
            baseUrl = new Uri(baseUrl.AbsoluteUri + "/");
        }

        Uri tokenUrl;
        if (tokenUrlText is not null)
        {
            if (!TryHttpUrl(tokenUrlText, out tokenUrl))
            {
                return "\"tokenUrl\" must be an absolute http(s) URL.";
            }
        }
        else
        {
            tokenUrl = new Uri(baseUrl, "admin/oauth/access_token");
        }

        apiVersion ??= ApiVersionDefault;
        var versionMatch = ApiVersionPattern().Match(apiVersion);
        var versionNumber = versionMatch.Success
            ? (int.Parse(versionMatch.Groups[1].Value, CultureInfo.InvariantCulture) * 100) + int.Parse(versionMatch.Groups[2].Value, CultureInfo.InvariantCulture)
            : 0;
        if (versionNumber < ApiVersionMin)
        {
            return $"\"apiVersion\" must be a quarterly Shopify Admin API version (YYYY-01, -04, -07 or -10) of 2024-07 or later, such as \"{ApiVersionDefault}\".";
        }

        if (locationId is not null)
        {
            var idMatch = LocationIdPattern().Match(locationId);
            if (!idMatch.Success)
            {
                return "\"locationId\" must be a Shopify location GID such as \"gid://shopify/Location/123456789\" (or its numeric id).";
            }
            locationId = "gid://shopify/Location/" + idMatch.Groups[1].Value;
        }
        else if (locationName is null)
        {
            return "needs \"locationId\" (a Shopify location GID) or \"locationName\" (the location's exact name).";
        }
        else if (locationName.Length is 0 or > 255)
        {
            return "\"locationName\" must be 1 to 255 characters long.";
        }

        // Without "credentials" the hub uses the channel id as the credential set's name.
        if (credentials is { Length: 0 })
        {
            return "\"credentials\" must name the credential set holding \"accessToken\" (or \"clientId\" and \"clientSecret\").";
        }

        reason ??= "correction";
        if (!Reasons.Contains(reason))
        {
            return $"\"reason\" must be one of Shopify's inventory reasons: {string.Join(", ", Reasons.Order(StringComparer.Ordinal))}.";
        }

        settings = new ShopifySettings(
            baseUrl, tokenUrl, apiVersion, versionNumber, locationId, locationId is null ? locationName : null,
            credentials, reason, compareAndSwap, batchSize, lookupBatchSize, bucketSize, restoreRate,
            TimeSpan.FromSeconds(timeoutSeconds), skuCacheSize);
        return null;
    }

    private static bool TryHttpUrl(string text, out Uri url)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var parsed) && (parsed.Scheme == Uri.UriSchemeHttps || parsed.Scheme == Uri.UriSchemeHttp))
        {
            url = parsed;
            return true;
        }
        url = null!;
        return false;
    }

    private static string? ReadString(JsonElement json, string name, out string? value)
    {
        value = null;
        if (!json.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (element.ValueKind != JsonValueKind.String)
        {
            return $"\"{name}\" must be a string.";
        }
        value = element.GetString();
        return null;
    }

    private static string? ReadBool(JsonElement json, string name, bool fallback, out bool value)
    {
        value = fallback;
        if (!json.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (element.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            return $"\"{name}\" must be true or false.";
        }
        value = element.GetBoolean();
        return null;
    }

    private static string? ReadInt(JsonElement json, string name, int min, int max, int fallback, out int value)
    {
        value = fallback;
        if (!json.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out value) || value < min || value > max)
        {
            value = fallback;
            return $"\"{name}\" must be a whole number from {min} to {max}.";
        }
        return null;
    }

    private static string? ReadNumber(JsonElement json, string name, double min, double max, double fallback, out double value)
    {
        value = fallback;
        if (!json.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetDouble(out value) || !(value >= min && value <= max))
        {
            value = fallback;
            return $"\"{name}\" must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}.";
        }
        return null;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")]
    private static partial Regex ShopPattern();

    [GeneratedRegex("^([0-9]{4})-(01|04|07|10)$")]
    private static partial Regex ApiVersionPattern();

    [GeneratedRegex("^(?:gid://shopify/Location/)?([0-9]{1,20})$")]
    private static partial Regex LocationIdPattern();
}
