using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Truestock.Server.Engine;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Exceptions;

/// <summary>A report: its name, range, bucket size, rows (oldest bucket first) and totals over the rows.</summary>
public sealed record ReportView<TRow, TTotals>(string Report, DateTimeOffset From, DateTimeOffset To, string Bucket, IReadOnlyList<TRow> Rows, TTotals Totals);

/// <summary>Drift raised in one bucket for one channel and location: how many, absolute units, signed units.</summary>
public sealed record DriftReportRowView(DateTimeOffset BucketStart, string? ChannelId, string? LocationId, long Count, long Units, long NetUnits);

/// <summary>Totals of the drift report.</summary>
public sealed record DriftReportTotals(long Count, long Units, long NetUnits);

/// <summary>Oversells in one bucket at one location: how many and how many units.</summary>
public sealed record OversellReportRowView(DateTimeOffset BucketStart, string? LocationId, long Count, long Units);

/// <summary>Totals of the oversell report.</summary>
public sealed record OversellReportTotals(long Count, long Units);

/// <summary>Resolutions in one bucket for one kind, and how long they took from raised to resolved.</summary>
public sealed record ResolutionReportRowView(
    DateTimeOffset BucketStart, string Kind, long Count, double MeanSeconds, double MedianSeconds, double P90Seconds, double MaxSeconds);

/// <summary>Totals of the time-to-resolve report.</summary>
public sealed record ResolutionReportTotals(long Count, double MeanSeconds, double MedianSeconds, double P90Seconds, double MaxSeconds);

/// <summary>
/// <c>/v1/reports/...</c>: drift by channel and location, oversells, and time to resolve, bucketed by UTC day (or hour),
/// over a bounded range; JSON, or CSV with <c>Accept: text/csv</c> or <c>?format=csv</c>. Scope admin.
/// </summary>
internal static partial class ReportEndpoints
{
    /// <summary>Longest range of one report.</summary>
    public const int RangeDaysMax = 366;

    /// <summary>Range when <c>from</c> is not given.</summary>
    private const int RangeDaysDefault = 30;

    /// <summary>Most rows in one report; a wider one is refused so that one request cannot build an unbounded answer.</summary>
    private const int ReportRowsMax = 100_000;

    /// <summary>Most resolutions one time-to-resolve report reads (they are held to compute percentiles).</summary>
    private const int ResolutionsReadMax = 1_000_000;

    private const string CsvContentType = "text/csv; charset=utf-8";

    public static void MapReports(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/reports").WithTags("Reports").RequireScope(Scopes.Admin);
        group.MapGet("/drift", Drift).Produces<ReportView<DriftReportRowView, DriftReportTotals>>().Produces<string>(200, "text/csv")
            .WithSummary("Drift raised by reconciliation per bucket, channel and location: count, absolute units, net units "
                + "(?from&to, ≤ 366 days; ?bucket=day|hour; ?channel, ?location; CSV with Accept: text/csv or ?format=csv).");
        group.MapGet("/oversells", Oversells).Produces<ReportView<OversellReportRowView, OversellReportTotals>>().Produces<string>(200, "text/csv")
            .WithSummary("Oversells per bucket and location: count and units (?from&to, ≤ 366 days; ?bucket=day|hour; ?location; CSV).");
        group.MapGet("/time-to-resolve", TimeToResolve).Produces<ReportView<ResolutionReportRowView, ResolutionReportTotals>>()
            .Produces<string>(200, "text/csv")
            .WithSummary("Exceptions resolved per bucket and kind, and the time from raised to resolved: mean, median, p90, max seconds "
                + "(?from&to, ≤ 366 days; ?bucket=day|hour; ?kind; CSV).");
    }

    private sealed record ReportRange(DateTimeOffset From, DateTimeOffset To, bool Hourly, bool Csv)
    {
        public string Bucket => Hourly ? "hour" : "day";

        public long BucketMs => Hourly ? 3_600_000 : 86_400_000;
    }

    private static IResult Drift(string? from, string? to, string? bucket, string? format, string? channel, string? location, HttpContext http,
        Sequencer engine, TimeProvider time)
    {
        var input = new JsonInput();
        var range = Range(http, from, to, bucket, format, input, time.GetUtcNow());
        if (channel is not null && !JsonInput.IsId(channel))
        {
            input.Invalid("channel", "must be a channel id.");
        }
        if (location is not null && !JsonInput.IsId(location))
        {
            input.Invalid("location", "must be a location id.");
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var rows = engine.Journal.ReadDriftReport(range.From.ToUnixTimeMilliseconds(), range.To.ToUnixTimeMilliseconds(), range.BucketMs,
            channel, location, ReportRowsMax + 1);
        if (rows.Count > ReportRowsMax)
        {
            return TooLarge();
        }
        var views = rows
            .OrderBy(r => r.BucketStartMs).ThenBy(r => r.ChannelId, StringComparer.Ordinal).ThenBy(r => r.LocationId, StringComparer.Ordinal)
            .Select(r => new DriftReportRowView(DateTimeOffset.FromUnixTimeMilliseconds(r.BucketStartMs), r.ChannelId, r.LocationId, r.Count, r.Units,
                r.NetUnits))
            .ToArray();
        if (range.Csv)
        {
            return Csv(http, "drift", ["bucketStart", "channelId", "locationId", "count", "units", "netUnits"],
                views.Select(v => new[] { Stamp(v.BucketStart), Cell(v.ChannelId), Cell(v.LocationId), Number(v.Count), Number(v.Units), Number(v.NetUnits) }));
        }
        return Results.Ok(new ReportView<DriftReportRowView, DriftReportTotals>("drift", range.From, range.To, range.Bucket, views,
            new DriftReportTotals(views.Sum(v => v.Count), views.Sum(v => v.Units), views.Sum(v => v.NetUnits))));
    }

    private static IResult Oversells(string? from, string? to, string? bucket, string? format, string? location, HttpContext http,
        Sequencer engine, TimeProvider time)
    {
        var input = new JsonInput();
        var range = Range(http, from, to, bucket, format, input, time.GetUtcNow());
        if (location is not null && !JsonInput.IsId(location))
        {
            input.Invalid("location", "must be a location id.");
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        // The journal keeps times as UTC round-trip text: its first 10 characters are the day, 13 the hour.
        var rows = engine.Journal.ReadOversellReport(range.From, range.To, range.Hourly ? 13 : 10, location, ReportRowsMax + 1);
        if (rows.Count > ReportRowsMax)
        {
            return TooLarge();
        }
        var views = rows
            .Select(r => new OversellReportRowView(BucketOf(r.Bucket), r.LocationId, r.Count, r.Units))
            .OrderBy(v => v.BucketStart).ThenBy(v => v.LocationId, StringComparer.Ordinal)
            .ToArray();
        if (range.Csv)
        {
            return Csv(http, "oversells", ["bucketStart", "locationId", "count", "units"],
                views.Select(v => new[] { Stamp(v.BucketStart), Cell(v.LocationId), Number(v.Count), Number(v.Units) }));
        }
        return Results.Ok(new ReportView<OversellReportRowView, OversellReportTotals>("oversells", range.From, range.To, range.Bucket, views,
            new OversellReportTotals(views.Sum(v => v.Count), views.Sum(v => v.Units))));
    }

    private static IResult TimeToResolve(string? from, string? to, string? bucket, string? format, string? kind, HttpContext http,
        Sequencer engine, TimeProvider time)
    {
        var input = new JsonInput();
        var range = Range(http, from, to, bucket, format, input, time.GetUtcNow());
        if (kind is not null && !JsonInput.IsId(kind))
        {
            input.Invalid("kind", "must be an exception kind such as oversell or drift.");
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var rows = engine.Journal.ReadResolutions(range.From.ToUnixTimeMilliseconds(), range.To.ToUnixTimeMilliseconds(), kind, ResolutionsReadMax + 1);
        if (rows.Count > ResolutionsReadMax)
        {
            return TooLarge(ResolutionsReadMax, "resolutions");
        }
        var views = rows
            .GroupBy(r => (Bucket: r.ResolvedAtMs / range.BucketMs * range.BucketMs, r.Kind))
            .Select(g =>
            {
                var s = Stats(g.Select(Seconds));
                return new ResolutionReportRowView(DateTimeOffset.FromUnixTimeMilliseconds(g.Key.Bucket), g.Key.Kind, s.Count, s.Mean, s.Median, s.P90, s.Max);
            })
            .OrderBy(v => v.BucketStart).ThenBy(v => v.Kind, StringComparer.Ordinal)
            .ToArray();
        if (range.Csv)
        {
            return Csv(http, "time-to-resolve", ["bucketStart", "kind", "count", "meanSeconds", "medianSeconds", "p90Seconds", "maxSeconds"],
                views.Select(v => new[]
                {
                    Stamp(v.BucketStart), Cell(v.Kind), Number(v.Count), Number(v.MeanSeconds), Number(v.MedianSeconds), Number(v.P90Seconds),
                    Number(v.MaxSeconds),
                }));
        }
        var all = Stats(rows.Select(Seconds));
        return Results.Ok(new ReportView<ResolutionReportRowView, ResolutionReportTotals>("time-to-resolve", range.From, range.To, range.Bucket, views,
            new ResolutionReportTotals(all.Count, all.Mean, all.Median, all.P90, all.Max)));
    }

    private static double Seconds(ResolutionRow r) => Math.Max(0, r.ResolvedAtMs - r.RaisedAtMs) / 1000.0;

    /// <summary>Count, mean, median, 90th percentile (nearest rank) and maximum, in seconds rounded to milliseconds.</summary>
    private static (long Count, double Mean, double Median, double P90, double Max) Stats(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return (0, 0, 0, 0, 0);
        }
        double Rank(double q) => sorted[Math.Max(0, (int)Math.Ceiling(q * sorted.Length) - 1)];
        return (sorted.Length, Math.Round(sorted.Average(), 3), Rank(0.5), Rank(0.9), sorted[^1]);
    }

    /// <summary>
    /// Reads from, to, bucket and format. Defaults: to = the end of the current bucket, from = to − 30 days. The range must be positive and at most
    /// 366 days. CSV when format=csv, or when format is absent and Accept names text/csv.
    /// </summary>
    private static ReportRange Range(HttpContext http, string? from, string? to, string? bucket, string? format, JsonInput input, DateTimeOffset now)
    {
        var hourly = bucket is "hour";
        // By default the report ends with the bucket now is in, so that what was recorded this very moment is counted.
        var bucketLength = hourly ? TimeSpan.FromHours(1) : TimeSpan.FromDays(1);
        var toTime = to is null ? new DateTimeOffset((now.UtcTicks / bucketLength.Ticks + 1) * bucketLength.Ticks, TimeSpan.Zero) : Timestamp(to, "to", input);
        var fromTime = from is not null ? Timestamp(from, "from", input) : input.HasErrors ? toTime : toTime.AddDays(-RangeDaysDefault);
        if (!input.HasErrors)
        {
            if (fromTime >= toTime)
            {
                input.Invalid("from", "must be before to.");
            }
            else if (toTime - fromTime > TimeSpan.FromDays(RangeDaysMax))
            {
                input.Invalid("to", $"must be at most {RangeDaysMax} days after from.");
            }
        }
        if (bucket is not (null or "day" or "hour"))
        {
            input.Invalid("bucket", "must be day or hour.");
        }
        bool csv;
        if (format is null)
        {
            csv = http.Request.GetTypedHeaders().Accept.Any(a => string.Equals(a.MediaType.Value, "text/csv", StringComparison.OrdinalIgnoreCase));
        }
        else
        {
            csv = format == "csv";
            if (format is not ("csv" or "json"))
            {
                input.Invalid("format", "must be json or csv.");
            }
        }
        return new ReportRange(fromTime.ToUniversalTime(), toTime.ToUniversalTime(), hourly, csv);
    }

    private static DateTimeOffset Timestamp(string text, string field, JsonInput input)
    {
        // A '+' in a query string arrives as a space unless the client escaped it as %2B.
        var s = text.Replace(' ', '+');
        if (!Rfc3339().IsMatch(s) || !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t))
        {
            input.Invalid(field, "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-01T00:00:00Z.");
            return default;
        }
        // Reports cover the hub's lifetime; bounding the year keeps the range arithmetic away from DateTimeOffset's limits.
        if (t.UtcDateTime.Year is < 2000 or > 9000)
        {
            input.Invalid(field, "must be between the years 2000 and 9000.");
            return default;
        }
        return t;
    }

    /// <summary>The start of an oversell bucket from its text: "yyyy-MM-dd" or "yyyy-MM-ddTHH" (UTC).</summary>
    private static DateTimeOffset BucketOf(string text) =>
        DateTimeOffset.ParseExact(text, text.Length == 10 ? "yyyy-MM-dd" : "yyyy-MM-dd'T'HH", CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static IResult TooLarge(int limit = ReportRowsMax, string what = "rows") => Problems.Create(StatusCodes.Status422UnprocessableEntity,
        "report-too-large", "The report is too large.", $"The report would take more than {limit} {what}; choose a shorter range, a day bucket or a filter.");

    private static IResult Csv(HttpContext http, string name, string[] header, IEnumerable<string[]> rows)
    {
        var text = new StringBuilder();
        text.Append(string.Join(',', header)).Append("\r\n");
        foreach (var row in rows)
        {
            text.Append(string.Join(',', row)).Append("\r\n");
        }
        http.Response.Headers.ContentDisposition = $"attachment; filename=\"{name}.csv\"";
        return Results.Text(text.ToString(), CsvContentType, Encoding.UTF8);
    }

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Number(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Number(double n) => n.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>
    /// An RFC 4180 text cell. Text that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) gets a
    /// leading apostrophe, because ids and SKUs come from outside systems.
    /// </summary>
    private static string Cell(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }
        if (value[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
        {
            value = "'" + value;
        }
        return value.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : value;
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$", RegexOptions.CultureInvariant)]
    private static partial Regex Rfc3339();
}
