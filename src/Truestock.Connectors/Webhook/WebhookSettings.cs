using System.Globalization;
using System.Text.Json;

namespace Truestock.Connectors.Webhook;

/// <summary>
/// The webhook connector's settings, from the channel's connector JSON
/// (<c>{"kind":"webhook", "url":"https://erp.example.com/truestock", "credentials":"erp-hook"}</c>).
/// The HMAC secret is not a setting: the connector asks <see cref="ConnectorContext.Credential"/> for it.
/// </summary>
internal sealed record WebhookSettings(
    Uri Url,
    string? CredentialSet,
    string SecretName,
    string Header,
    double RequestsPerSecondMax,
    int BatchSizeMax,
    int ConcurrencyMax,
    TimeSpan Timeout)
{
    /// <summary>The secret's name in the channel's credential set unless <c>secretName</c> says otherwise.</summary>
    public const string SecretNameDefault = "secret";

    /// <summary>Requests per second by default: gentle on a receiver nobody has measured.</summary>
    public const double RequestsPerSecondMaxDefault = 10;

    /// <summary>Updates per publish call by default.</summary>
    public const int BatchSizeMaxDefault = 100;

    /// <summary>Requests in flight at once by default.</summary>
    public const int ConcurrencyMaxDefault = 4;

    /// <summary>Per-request timeout by default.</summary>
    public const double TimeoutSecondsDefault = 10;

    /// <summary>Reads and validates settings; returns an error message naming the field, or null.</summary>
    public static string? TryParse(JsonElement json, out WebhookSettings? settings)
    {
        settings = null;
        if (json.ValueKind != JsonValueKind.Object)
        {
            return "the webhook connector settings must be a JSON object.";
        }
        string? error = null;
        void Fail(string message) => error ??= message;

        Uri? url = null;
        if (!json.TryGetProperty("url", out var urlValue) || urlValue.ValueKind == JsonValueKind.Null)
        {
            Fail("\"url\" is required: the absolute http or https URL that receives the updates.");
        }
        else if (urlValue.ValueKind != JsonValueKind.String
            || !Uri.TryCreate(urlValue.GetString(), UriKind.Absolute, out url)
            || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps)
            || !string.IsNullOrEmpty(url.UserInfo))
        {
            Fail("\"url\" must be an absolute http or https URL without user info (secrets belong in credentials).");
        }

        var credentials = Text(json, "credentials", 200, Fail);
        var secretName = Text(json, "secretName", 200, Fail);
        var header = Text(json, "header", 100, Fail) ?? WebhookSignature.HeaderDefault;
        if (!IsToken(header))
        {
            Fail("\"header\" must be a valid HTTP header name (letters, digits and -).");
        }
        var rate = Number(json, "requestsPerSecondMax", RequestsPerSecondMaxDefault, 0.01, 10_000, integer: false, Fail);
        var batch = (int)Number(json, "batchSizeMax", BatchSizeMaxDefault, 1, 10_000, integer: true, Fail);
        var concurrency = (int)Number(json, "concurrencyMax", ConcurrencyMaxDefault, 1, 64, integer: true, Fail);
        var timeout = Number(json, "timeoutSeconds", TimeoutSecondsDefault, 0.1, 300, integer: false, Fail);
        if (error is not null)
        {
            return error;
        }
        settings = new WebhookSettings(url!, credentials, secretName ?? SecretNameDefault, header, rate, batch, concurrency, TimeSpan.FromSeconds(timeout));
        return null;
    }

    private static string? Text(JsonElement json, string name, int lengthMax, Action<string> fail)
    {
        if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        var text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
        if (string.IsNullOrWhiteSpace(text) || text.Length > lengthMax)
        {
            fail($"\"{name}\" must be a non-empty string of at most {lengthMax} characters.");
            return null;
        }
        return text;
    }

    private static double Number(JsonElement json, string name, double fallback, double min, double max, bool integer, Action<string> fail)
    {
        if (!json.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number)
            || number < min || number > max || (integer && number != Math.Floor(number)))
        {
            var kind = integer ? "an integer" : "a number";
            fail(string.Create(CultureInfo.InvariantCulture, $"\"{name}\" must be {kind} from {min} to {max}."));
            return fallback;
        }
        return number;
    }

    private static bool IsToken(string name) =>
        name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');
}
