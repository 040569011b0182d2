using System.Globalization;

namespace Truestock.Connectors.Erp;

/// <summary>
/// Settings of an ERP connector. Secrets are not settings: the connector asks <see cref="ErpContext.Credential"/>
/// for the secret named by <see cref="SecretName"/> (REST) or <see cref="PasswordName"/> (Odoo) in the credential set.
/// </summary>
public sealed class ErpSettings
{
    /// <summary>The generic REST/JSON ERP.</summary>
    public const string KindRest = "rest";

    /// <summary>Odoo through its external JSON-RPC API.</summary>
    public const string KindOdoo = "odoo";

    /// <summary>Movements per REST request unless configured.</summary>
    public const int RestBatchSizeMaxDefault = 100;

    /// <summary>
    /// Movements per Odoo batch unless configured. Odoo books each movement with several calls (see the connector),
    /// so a batch is smaller than a REST one to keep a batch's duration, and so its retry unit, short.
    /// </summary>
    public const int OdooBatchSizeMaxDefault = 20;

    /// <summary>Most movements per batch that the settings accept.</summary>
    public const int BatchSizeMaxLimit = 1000;

    /// <summary><see cref="KindRest"/> or <see cref="KindOdoo"/>.</summary>
    public string Kind { get; init; } = "";

    /// <summary>
    /// REST: the absolute URL the movements are POSTed to. Odoo: the instance's base URL (e.g. https://acme.odoo.com);
    /// the connector calls <c>/jsonrpc</c> under it.
    /// </summary>
    public Uri? Url { get; init; }

    /// <summary>The name of the credential set holding the secret (<c>Truestock:Credentials:{set}:{name}</c>).</summary>
    public string CredentialSet { get; init; } = "erp";

    /// <summary>Movements per batch; null for the kind's default.</summary>
    public int? BatchSizeMax { get; init; }

    /// <summary>Requests per second the connector sends at most (a token bucket with one second's burst).</summary>
    public double RequestsPerSecondMax { get; init; } = 5;

    /// <summary>Requests in flight at once at most.</summary>
    public int ConcurrencyMax { get; init; } = 2;

    /// <summary>Time limit of one HTTP request.</summary>
    public double TimeoutSeconds { get; init; } = 30;

    /// <summary>REST: the header that carries the secret.</summary>
    public string AuthHeader { get; init; } = "X-Api-Key";

    /// <summary>REST: the secret's name in the credential set.</summary>
    public string SecretName { get; init; } = "apiKey";

    /// <summary>Odoo: the database (on Odoo Online, the instance name).</summary>
    public string? Database { get; init; }

    /// <summary>Odoo: the login of the integration user.</summary>
    public string? Login { get; init; }

    /// <summary>Odoo: the name of the user's password or API key in the credential set (Odoo takes either in its place).</summary>
    public string PasswordName { get; init; } = "password";

    /// <summary>Odoo: hub location id → <c>stock.location</c> id (an internal location, usually a warehouse's stock location).</summary>
    public IReadOnlyDictionary<string, long> LocationMap { get; init; } = new Dictionary<string, long>(StringComparer.Ordinal);

    /// <summary>Odoo: hub SKU → <c>product.product</c> id; SKUs not listed are looked up by Internal Reference (<c>default_code</c>).</summary>
    public IReadOnlyDictionary<string, long> ProductMap { get; init; } = new Dictionary<string, long>(StringComparer.Ordinal);

    /// <summary>The batch size in effect.</summary>
    public int EffectiveBatchSizeMax => BatchSizeMax ?? (Kind == KindOdoo ? OdooBatchSizeMaxDefault : RestBatchSizeMaxDefault);

    /// <summary>Returns an error message naming the first invalid setting, or null when the settings are valid.</summary>
    public string? Validate()
    {
        if (Kind is not (KindRest or KindOdoo))
        {
            return $"Kind must be '{KindRest}' or '{KindOdoo}', not '{Kind}'.";
        }
        if (Url is null || !Url.IsAbsoluteUri || (Url.Scheme != Uri.UriSchemeHttp && Url.Scheme != Uri.UriSchemeHttps))
        {
            return "Url must be an absolute http or https URL.";
        }
        if (!string.IsNullOrEmpty(Url.UserInfo))
        {
            return "Url must not carry user info: secrets belong in the credential set.";
        }
        if (!IsName(CredentialSet))
        {
            return "Credentials must name a credential set (1–200 characters).";
        }
        if (BatchSizeMax is < 1 or > BatchSizeMaxLimit)
        {
            return string.Create(CultureInfo.InvariantCulture, $"BatchSizeMax must be from 1 to {BatchSizeMaxLimit}.");
        }
        if (!(RequestsPerSecondMax is >= 0.01 and <= 10_000))
        {
            return "RequestsPerSecondMax must be from 0.01 to 10000.";
        }
        if (ConcurrencyMax is < 1 or > 64)
        {
            return "ConcurrencyMax must be from 1 to 64.";
        }
        if (!(TimeoutSeconds is >= 0.1 and <= 300))
        {
            return "TimeoutSeconds must be from 0.1 to 300.";
        }
        if (Kind == KindRest)
        {
            if (string.IsNullOrEmpty(AuthHeader) || !AuthHeader.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            {
                return "AuthHeader must be an HTTP header name (letters, digits and -).";
            }
            return IsName(SecretName) ? null : "SecretName must name a secret of the credential set (1–200 characters).";
        }
        if (string.IsNullOrWhiteSpace(Database))
        {
            return "Database is required for Odoo: the database name (on Odoo Online, the instance name).";
        }
        if (string.IsNullOrWhiteSpace(Login))
        {
            return "Login is required for Odoo: the login of the integration user.";
        }
        if (!IsName(PasswordName))
        {
            return "PasswordName must name a secret of the credential set (1–200 characters).";
        }
        if (LocationMap.Count == 0)
        {
            return "LocationMap is required for Odoo: map every hub location whose movements are posted to a stock.location id (LocationMap:WH1=8).";
        }
        if (LocationMap.FirstOrDefault(p => p.Value <= 0) is { Key: not null } badLocation)
        {
            return $"LocationMap:{badLocation.Key} must be a positive stock.location id.";
        }
        if (ProductMap.FirstOrDefault(p => p.Value <= 0) is { Key: not null } badProduct)
        {
            return $"ProductMap:{badProduct.Key} must be a positive product.product id.";
        }
        return null;
    }

    private static bool IsName(string? s) => s is { Length: > 0 and <= 200 } && !string.IsNullOrWhiteSpace(s);
}
