using Truestock.Connectors.Erp;

namespace Truestock.Server.Erp;

/// <summary>
/// ERP posting, bound from <c>Truestock:Erp</c> (e.g. <c>--Truestock:Erp:Kind=rest --Truestock:Erp:Url=https://…</c>).
/// Off unless <see cref="Kind"/> is set. The secret is not a member: it is read from
/// <c>Truestock:Credentials:{Credentials}:{SecretName or PasswordName}</c> when the connector needs it, so it never sits
/// in an options object that could be dumped or logged.
/// </summary>
public sealed class ErpOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Truestock:Erp";

    /// <summary><c>rest</c> (generic REST/JSON ERP) or <c>odoo</c>; empty turns ERP posting off.</summary>
    public string? Kind { get; set; }

    /// <summary>REST: the URL movements are POSTed to. Odoo: the instance's base URL (the connector calls /jsonrpc under it).</summary>
    public string? Url { get; set; }

    /// <summary>The credential set holding the secret.</summary>
    public string Credentials { get; set; } = "erp";

    /// <summary>Movements per request (REST) or per batch (Odoo); unset for the kind's default (100 / 20).</summary>
    public int? BatchSizeMax { get; set; }

    /// <summary>Requests per second sent to the ERP at most (cloud ERPs enforce quotas).</summary>
    public double RequestsPerSecondMax { get; set; } = 5;

    /// <summary>Batches, and requests, in flight at once at most.</summary>
    public int ConcurrencyMax { get; set; } = 2;

    /// <summary>Time limit of one request to the ERP.</summary>
    public double TimeoutSeconds { get; set; } = 30;

    /// <summary>Attempts (1–100) for a transient failure before the posting becomes a dead letter.</summary>
    public int AttemptsMax { get; set; } = 10;

    /// <summary>Cap (1–86400) of the exponential backoff between attempts: 1 s, 2 s, 4 s, … with full jitter.</summary>
    public int BackoffSecondsMax { get; set; } = 300;

    /// <summary>How often the poster looks for due postings when it has nothing to do.</summary>
    public int PollMilliseconds { get; set; } = 200;

    /// <summary>REST: the header that carries the secret.</summary>
    public string AuthHeader { get; set; } = "X-Api-Key";

    /// <summary>REST: the secret's name in the credential set.</summary>
    public string SecretName { get; set; } = "apiKey";

    /// <summary>Odoo: the database (on Odoo Online, the instance name).</summary>
    public string? Database { get; set; }

    /// <summary>Odoo: the integration user's login.</summary>
    public string? Login { get; set; }

    /// <summary>Odoo: the name of the password or API key in the credential set.</summary>
    public string PasswordName { get; set; } = "password";

    /// <summary>Odoo: hub location id → <c>stock.location</c> id.</summary>
    public Dictionary<string, long> LocationMap { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Odoo: hub SKU → <c>product.product</c> id; other SKUs are looked up by Internal Reference (default_code).</summary>
    public Dictionary<string, long> ProductMap { get; set; } = new(StringComparer.Ordinal);

    /// <summary>True when ERP posting is configured.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(Kind);

    /// <summary>The connector's settings.</summary>
    public ErpSettings ToSettings() => new()
    {
        Kind = Kind?.Trim().ToLowerInvariant() ?? "",
        Url = Uri.TryCreate(Url, UriKind.Absolute, out var url) ? url : null,
        CredentialSet = Credentials,
        BatchSizeMax = BatchSizeMax,
        RequestsPerSecondMax = RequestsPerSecondMax,
        ConcurrencyMax = ConcurrencyMax,
        TimeoutSeconds = TimeoutSeconds,
        AuthHeader = AuthHeader,
        SecretName = SecretName,
        Database = Database,
        Login = Login,
        PasswordName = PasswordName,
        LocationMap = new Dictionary<string, long>(LocationMap, StringComparer.Ordinal),
        ProductMap = new Dictionary<string, long>(ProductMap, StringComparer.Ordinal),
    };

    /// <summary>Returns an error naming the first invalid setting (with its full configuration key), or null.</summary>
    public string? Validate()
    {
        if (AttemptsMax is < 1 or > 100)
        {
            return $"{Section}:AttemptsMax must be from 1 to 100.";
        }
        if (BackoffSecondsMax is < 1 or > 86_400)
        {
            return $"{Section}:BackoffSecondsMax must be from 1 to 86400.";
        }
        if (PollMilliseconds is < 1 or > 60_000)
        {
            return $"{Section}:PollMilliseconds must be from 1 to 60000.";
        }
        return ToSettings().Validate() is { } error ? $"{Section}: {error}" : null;
    }
}
