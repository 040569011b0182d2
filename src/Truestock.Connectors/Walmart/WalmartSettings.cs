using System.Globalization;
using System.Text.Json;

namespace Truestock.Connectors.Walmart;

/// <summary>
/// The Walmart connector's settings, read from the channel's connector JSON
/// (<c>{"kind":"walmart", "credentials":"acme-walmart", ...}</c>). Secrets are not settings: the
/// connector asks <see cref="ConnectorContext.Credential"/> for <c>clientId</c> and <c>clientSecret</c>.
/// </summary>
internal sealed record WalmartSettings(
    Uri BaseUri,
    Uri TokenUri,
    string? CredentialSet,
    string? ShipNode,
    string ServiceName,
    int BatchSizeMax,
    TimeSpan FeedPollInterval,
    int FeedPollAttemptsMax,
    double InventoryCallsPerMinute,
    double FeedsPerHour,
    int FeedItemsMin,
    TimeSpan Timeout,
    TimeSpan FeedPendingMax)
{
    /// <summary>Walmart's production Marketplace API host.</summary>
    public const string BaseUrlDefault = "https://marketplace.walmartapis.com/";

    /// <summary>The WM_SVC.NAME Walmart's examples use.</summary>
    public const string ServiceNameDefault = "Walmart Marketplace";

    /// <summary>Largest batch by default: a comfortable inventory feed (well under Walmart's 5 MB file limit).</summary>
    public const int BatchSizeMaxDefault = 1000;

    /// <summary>The largest batch allowed: 10,000 items stay far below the 5 MB inventory feed file limit.</summary>
    public const int BatchSizeMaxLimit = 10_000;

    /// <summary>Documented limit of the single-item inventory update (calls per minute).</summary>
    public const double InventoryCallsPerMinuteDefault = 200;

    /// <summary>Documented limit of inventory feed submissions (feeds per hour).</summary>
    public const double FeedsPerHourDefault = 10;

    /// <summary>Below this many non-urgent items a feed (one of ten hourly slots) is not worth spending.</summary>
    public const int FeedItemsMinDefault = 10;

    /// <summary>Seconds between feed status polls.</summary>
    public const double FeedPollIntervalSecondsDefault = 15;

    /// <summary>Feed status polls within one publish call before the feed is left pending.</summary>
    public const int FeedPollAttemptsMaxDefault = 8;

    /// <summary>Per-call timeout.</summary>
    public const double TimeoutSecondsDefault = 30;

    /// <summary>How long an unfinished feed is tracked (Walmart documents up to 30 minutes of processing).</summary>
    public const double FeedPendingMinutesMaxDefault = 120;

    /// <summary>Reads and validates settings; returns an error message naming the field, or null.</summary>
    public static string? TryParse(JsonElement json, out WalmartSettings? settings)
    {
        settings = null;
        if (json.ValueKind != JsonValueKind.Object)
        {
            return "the walmart connector settings must be a JSON object.";
        }
        var reader = new SettingsReader(json);
        var baseUri = reader.Url("baseUrl", BaseUrlDefault, directory: true);
        var tokenUri = reader.Url("tokenUrl", null, directory: false);
        // The publisher uses the channel id as the credential set when "credentials" is absent.
        var credentials = reader.String("credentials", lengthMax: 200);
        var shipNode = reader.String("shipNode", lengthMax: 100);
        var serviceName = reader.String("serviceName", lengthMax: 100) ?? ServiceNameDefault;
        var batchSizeMax = (int)reader.Number("batchSizeMax", BatchSizeMaxDefault, 1, BatchSizeMaxLimit, integer: true);
        var pollInterval = reader.Number("feedPollIntervalSeconds", FeedPollIntervalSecondsDefault, 0.01, 3600, integer: false);
        var pollAttempts = (int)reader.Number("feedPollAttemptsMax", FeedPollAttemptsMaxDefault, 1, 1000, integer: true);
        var callsPerMinute = reader.Number("inventoryCallsPerMinute", InventoryCallsPerMinuteDefault, 1, 100_000, integer: false);
        var feedsPerHour = reader.Number("feedsPerHour", FeedsPerHourDefault, 1, 10_000, integer: false);
        var feedItemsMin = (int)reader.Number("feedItemsMin", FeedItemsMinDefault, 1, BatchSizeMaxLimit, integer: true);
        var timeout = reader.Number("timeoutSeconds", TimeoutSecondsDefault, 0.1, 300, integer: false);
        var pendingMax = reader.Number("feedPendingMinutesMax", FeedPendingMinutesMaxDefault, 0.01, 24 * 60, integer: false);
        if (reader.Error is not null)
        {
            return reader.Error;
        }
        settings = new WalmartSettings(
            baseUri!,
            tokenUri ?? new Uri(baseUri!, "v3/token"),
            credentials,
            shipNode,
            serviceName,
            batchSizeMax,
            TimeSpan.FromSeconds(pollInterval),
            pollAttempts,
            callsPerMinute,
            feedsPerHour,
            feedItemsMin,
            TimeSpan.FromSeconds(timeout),
            TimeSpan.FromMinutes(pendingMax));
        return null;
    }

    /// <summary>Reads typed settings and keeps the first error (so the message names one field clearly).</summary>
    private sealed class SettingsReader(JsonElement json)
    {
        public string? Error { get; private set; }

        public Uri? Url(string name, string? fallback, bool directory)
        {
            if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return fallback is null ? null : new Uri(fallback);
            }
            if (value.ValueKind != JsonValueKind.String
                || !Uri.TryCreate(value.GetString(), UriKind.Absolute, out var uri)
                || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                Fail($"\"{name}\" must be an absolute http or https URL.");
                return null;
            }
            // A base URL is a directory: relative API paths resolve under it only with a trailing slash.
            return directory && !uri.AbsoluteUri.EndsWith('/') ? new Uri(uri.AbsoluteUri + "/") : uri;
        }

        public string? String(string name, int lengthMax)
        {
            if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return null;
            }
            var text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            if (string.IsNullOrWhiteSpace(text) || text.Length > lengthMax)
            {
                Fail($"\"{name}\" must be a non-empty string of at most {lengthMax} characters.");
                return null;
            }
            return text;
        }

        public double Number(string name, double fallback, double min, double max, bool integer)
        {
            if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            {
                return fallback;
            }
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number)
                || number < min || number > max || (integer && number != Math.Floor(number)))
            {
                var kind = integer ? "an integer" : "a number";
                Fail(string.Create(CultureInfo.InvariantCulture, $"\"{name}\" must be {kind} from {min} to {max}."));
                return fallback;
            }
            return number;
        }

        private void Fail(string message) => Error ??= message;
    }
}
