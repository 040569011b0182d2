using System.Globalization;
using System.Net;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>
/// One source that publishes no events and whose stock levels the hub polls over HTTP, bound from
/// <c>Truestock:PollingSources:{sourceId}</c> (see docs/ingestion.md, "Polling sources"). The secret
/// sent to the source is deliberately not a member: it is read from
/// <c>Truestock:Credentials:{Credentials}:authHeaderValue</c> at every poll, so it never sits in an
/// options object that could be dumped, and it lives in the deployment, never in the repository.
/// </summary>
public sealed class PollingSourceOptions
{
    /// <summary>False turns the source off without removing its settings: it is listed, never polled.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The stock-level endpoint (http or https); the hub adds <c>limit</c> and <c>cursor</c> to its query.</summary>
    public string? Url { get; set; }

    /// <summary>Time between the starts of two polls, before jitter.</summary>
    public int IntervalSeconds { get; set; } = 300;

    /// <summary>Time limit of one page request, body included.</summary>
    public int TimeoutSeconds { get; set; } = 30;

    /// <summary>Credential set holding <c>authHeaderValue</c>; none means the source is called without authentication.</summary>
    public string? Credentials { get; set; }

    /// <summary>The request header the secret is sent in, e.g. <c>Authorization</c> (value <c>Bearer …</c>) or <c>X-Api-Key</c>.</summary>
    public string AuthHeader { get; set; } = "Authorization";

    /// <summary>
    /// Allows sending the secret over plain http to a host other than the loopback one. Off by
    /// default, because anyone on the network path could read it.
    /// </summary>
    public bool AllowInsecureHttp { get; set; }

    /// <summary>Source location code → hub location id. Each hub location may be fed by one source location only.</summary>
    public Dictionary<string, string> LocationMap { get; set; } = [];

    /// <summary>Hub location of items that name no location (a source with a single site).</summary>
    public string? DefaultLocationId { get; set; }

    /// <summary>Most items accepted in one page; also sent to the source as <c>limit</c>.</summary>
    public int PageSizeMax { get; set; } = 1000;

    /// <summary>Most pages read in one poll; a source that goes on is cut off and the poll fails.</summary>
    public int PagesMax { get; set; } = 1000;

    /// <summary>Largest page body, in bytes, after decompression.</summary>
    public int ResponseBytesMax { get; set; } = 8 * 1024 * 1024;

    /// <summary>Retries of a poll that failed transiently (unreachable, timeout, 408/429/5xx, engine busy) before waiting for the next interval.</summary>
    public int RetriesMax { get; set; } = 3;

    /// <summary>How far past the hub's clock a source's timestamp may be; later items are skipped, since a count from the future would supersede every movement until then.</summary>
    public int ClockSkewSecondsMax { get; set; } = 300;
}

/// <summary>A polling source whose settings were checked at start.</summary>
internal sealed record PollingSource
{
    /// <summary>The name of the credential in the source's set.</summary>
    public const string SecretName = "authHeaderValue";

    public required string Id { get; init; }

    public required bool Enabled { get; init; }

    /// <summary>Null only for a disabled source, whose settings are not checked.</summary>
    public Uri? Url { get; init; }

    public required TimeSpan Interval { get; init; }

    public required TimeSpan Timeout { get; init; }

    public string? CredentialSet { get; init; }

    public required string AuthHeader { get; init; }

    /// <summary>Source location code (case-insensitive, as configuration keys are) → hub location id.</summary>
    public required IReadOnlyDictionary<string, string> LocationMap { get; init; }

    public string? DefaultLocationId { get; init; }

    public required int PageSizeMax { get; init; }

    public required int PagesMax { get; init; }

    public required int ResponseBytesMax { get; init; }

    public required int RetriesMax { get; init; }

    public required TimeSpan ClockSkewMax { get; init; }

    /// <summary>
    /// The address as shown in the status and logs: scheme, host, port and path only, because a
    /// query string may carry a key of the source's own.
    /// </summary>
    public string? DisplayUrl => Url?.GetLeftPart(UriPartial.Path);

    /// <summary>The hub location of an item's location code, or null when the code is not mapped.</summary>
    public string? MapLocation(string? code) =>
        code is null ? DefaultLocationId : LocationMap.TryGetValue(code, out var hub) ? hub : null;
}

/// <summary>Reads and checks <c>Truestock:PollingSources</c>.</summary>
internal static class PollingSourceSettings
{
    public const string Section = "Truestock:PollingSources";

    public const int IntervalSecondsMin = 5;
    public const int IntervalSecondsMax = 86_400;
    public const int TimeoutSecondsMin = 1;
    public const int TimeoutSecondsMax = 300;
    public const int PageSizeMaxLimit = 10_000;
    public const int PagesMaxLimit = 100_000;
    public const int ResponseBytesMin = 1024;
    public const int ResponseBytesMaxLimit = 64 * 1024 * 1024;
    public const int RetriesMaxLimit = 10;
    public const int ClockSkewSecondsMaxLimit = 86_400;

    private static readonly HashSet<string> KnownSettings = typeof(PollingSourceOptions).GetProperties()
        .Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Every configured source, checked. Throws <see cref="InvalidOperationException"/> naming each
    /// setting at fault, so that a hub with a bad source refuses to start rather than poll wrongly.
    /// </summary>
    public static IReadOnlyList<PollingSource> Load(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var sources = new List<PollingSource>();
        var problems = new List<string>();
        foreach (var section in configuration.GetSection(Section).GetChildren().OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            var path = $"{Section}:{section.Key}";
            // A misspelt setting would otherwise be ignored silently and its default used.
            var unknown = section.GetChildren().Select(c => c.Key).Where(k => !KnownSettings.Contains(k)).ToList();
            if (unknown.Count > 0)
            {
                problems.Add($"{path} has unknown setting(s) {string.Join(", ", unknown.Select(k => $"'{k}'"))}; "
                    + $"the settings of a polling source are {string.Join(", ", KnownSettings.Order(StringComparer.Ordinal))}.");
                continue;
            }
            PollingSourceOptions options;
            try
            {
                options = section.Get<PollingSourceOptions>() ?? new PollingSourceOptions();
            }
            catch (InvalidOperationException ex)
            {
                // The binder names the key whose value it could not convert (IntervalSeconds=often).
                problems.Add(ex.Message);
                continue;
            }
            if (Check(section.Key, path, options, configuration, problems) is { } source)
            {
                sources.Add(source);
            }
        }
        if (problems.Count > 0)
        {
            throw new InvalidOperationException("Polling sources are misconfigured (see docs/ingestion.md, \"Polling sources\"):"
                + string.Concat(problems.Select(p => "\n  - " + p)));
        }
        return sources;
    }

    private static PollingSource? Check(string id, string path, PollingSourceOptions o, IConfiguration configuration, List<string> problems)
    {
        var before = problems.Count;
        if (!JsonInput.IsId(id))
        {
            // The id becomes the events' source and part of their ids, so it follows the rules of ids.
            problems.Add($"{path}: the source id must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
        }
        Range(problems, path, "IntervalSeconds", o.IntervalSeconds, IntervalSecondsMin, IntervalSecondsMax);
        if (!o.Enabled)
        {
            // A disabled source is kept for later; only what the status shows is needed.
            return problems.Count > before ? null : new PollingSource
            {
                Id = id,
                Enabled = false,
                Url = Uri.TryCreate(o.Url, UriKind.Absolute, out var u) && u.Scheme is "http" or "https" && u.UserInfo.Length == 0 ? u : null,
                Interval = TimeSpan.FromSeconds(o.IntervalSeconds),
                Timeout = TimeSpan.FromSeconds(o.TimeoutSeconds),
                AuthHeader = o.AuthHeader,
                LocationMap = new Dictionary<string, string>(),
                PageSizeMax = o.PageSizeMax,
                PagesMax = o.PagesMax,
                ResponseBytesMax = o.ResponseBytesMax,
                RetriesMax = o.RetriesMax,
                ClockSkewMax = TimeSpan.FromSeconds(o.ClockSkewSecondsMax),
            };
        }
        Uri? url = null;
        if (string.IsNullOrWhiteSpace(o.Url))
        {
            problems.Add($"{path}:Url is required: the address of the source's stock levels.");
        }
        else if (!Uri.TryCreate(o.Url, UriKind.Absolute, out url) || url.Scheme is not ("http" or "https"))
        {
            problems.Add($"{path}:Url must be an absolute http or https address; got '{Shorten(o.Url)}'.");
            url = null;
        }
        else if (url.UserInfo.Length > 0)
        {
            problems.Add($"{path}:Url must not carry a user name or password; put the secret in Truestock:Credentials:{{set}}:{PollingSource.SecretName} and name the set in Credentials.");
            url = null;
        }
        else if (url.Fragment.Length > 0)
        {
            problems.Add($"{path}:Url must not have a fragment (#…); it is never sent.");
            url = null;
        }
        Range(problems, path, "TimeoutSeconds", o.TimeoutSeconds, TimeoutSecondsMin, TimeoutSecondsMax);
        Range(problems, path, "PageSizeMax", o.PageSizeMax, 1, PageSizeMaxLimit);
        Range(problems, path, "PagesMax", o.PagesMax, 1, PagesMaxLimit);
        Range(problems, path, "ResponseBytesMax", o.ResponseBytesMax, ResponseBytesMin, ResponseBytesMaxLimit);
        Range(problems, path, "RetriesMax", o.RetriesMax, 0, RetriesMaxLimit);
        Range(problems, path, "ClockSkewSecondsMax", o.ClockSkewSecondsMax, 0, ClockSkewSecondsMaxLimit);

        string? set = null;
        if (!string.IsNullOrWhiteSpace(o.Credentials))
        {
            set = o.Credentials.Trim();
            if (string.IsNullOrEmpty(configuration[$"Truestock:Credentials:{set}:{PollingSource.SecretName}"]))
            {
                problems.Add($"{path}:Credentials names the set '{set}', but Truestock:Credentials:{set}:{PollingSource.SecretName} is not set "
                    + $"(environment Truestock__Credentials__{set}__{PollingSource.SecretName}).");
            }
            if (!IsHeaderName(o.AuthHeader))
            {
                problems.Add($"{path}:AuthHeader must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~); got '{Shorten(o.AuthHeader)}'.");
            }
            else if (o.AuthHeader.ToUpperInvariant() is "HOST" or "CONTENT-LENGTH" or "TRANSFER-ENCODING" or "CONNECTION" or "ACCEPT" or "ACCEPT-ENCODING")
            {
                problems.Add($"{path}:AuthHeader cannot be '{o.AuthHeader}', a header the hub sets itself.");
            }
            if (url is { Scheme: "http" } && !IsLoopback(url) && !o.AllowInsecureHttp)
            {
                problems.Add($"{path}:Url is plain http to {url.Host}, so the secret would cross the network readable by anyone on the path; "
                    + "use https, or set AllowInsecureHttp=true if that path is trusted.");
            }
        }

        var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var fedBy = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (code, hub) in o.LocationMap.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!JsonInput.IsId(hub ?? ""))
            {
                problems.Add($"{path}:LocationMap:{code} must be a hub location id (1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'); got '{Shorten(hub ?? "")}'.");
                continue;
            }
            if (fedBy.TryGetValue(hub!, out var other))
            {
                // Two source locations counted into one hub position would overwrite each other's counts.
                problems.Add($"{path}:LocationMap maps both '{other}' and '{code}' to '{hub}'; each hub location can take the counts of one source location only.");
                continue;
            }
            fedBy[hub!] = code;
            map[code] = hub!;
        }
        string? defaultLocation = null;
        if (!string.IsNullOrWhiteSpace(o.DefaultLocationId))
        {
            defaultLocation = o.DefaultLocationId.Trim();
            if (!JsonInput.IsId(defaultLocation))
            {
                problems.Add($"{path}:DefaultLocationId must be a hub location id (1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'); got '{Shorten(defaultLocation)}'.");
            }
            else if (fedBy.TryGetValue(defaultLocation, out var code))
            {
                problems.Add($"{path}:DefaultLocationId '{defaultLocation}' is also the target of LocationMap:{code}; items without a location and items at '{code}' would overwrite each other's counts.");
            }
        }
        if (map.Count == 0 && defaultLocation is null)
        {
            problems.Add($"{path}: set LocationMap:{{source location code}}={{hub location id}} or DefaultLocationId, so that the source's items have a hub location.");
        }
        if (problems.Count > before)
        {
            return null;
        }
        return new PollingSource
        {
            Id = id,
            Enabled = true,
            Url = url,
            Interval = TimeSpan.FromSeconds(o.IntervalSeconds),
            Timeout = TimeSpan.FromSeconds(o.TimeoutSeconds),
            CredentialSet = set,
            AuthHeader = o.AuthHeader,
            LocationMap = map,
            DefaultLocationId = defaultLocation,
            PageSizeMax = o.PageSizeMax,
            PagesMax = o.PagesMax,
            ResponseBytesMax = o.ResponseBytesMax,
            RetriesMax = o.RetriesMax,
            ClockSkewMax = TimeSpan.FromSeconds(o.ClockSkewSecondsMax),
        };
    }

    private static void Range(List<string> problems, string path, string name, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{path}:{name} must be {min:N0}–{max:N0}; got {value}."));
        }
    }

    private static bool IsLoopback(Uri url) =>
        url.IsLoopback || (IPAddress.TryParse(url.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>An RFC 9110 token.</summary>
    private static bool IsHeaderName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal));

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..80] + "…";
}
