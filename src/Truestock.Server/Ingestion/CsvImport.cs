using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>Rows of a CSV import by what became of them.</summary>
/// <param name="Applied">Rows applied.</param>
/// <param name="Duplicate">Rows whose eventId was seen before with the same content: nothing changed.</param>
/// <param name="Superseded">Movements older than the position's latest count: only non-onHand effects applied.</param>
/// <param name="Stale">Counts older than the position's latest count: nothing changed.</param>
/// <param name="Rejected">Rows the engine rejected (unknown location, idempotency conflict, ...): nothing changed.</param>
/// <param name="Invalid">Rows that failed validation (CSV syntax, field rules) and never reached the engine.</param>
/// <param name="Valid">Only for a local check (<c>import ... --check</c>): rows that passed validation.</param>
public sealed record ImportCounts(long Applied, long Duplicate, long Superseded, long Stale, long Rejected, long Invalid, long? Valid = null);

/// <summary>One problem with one row of a CSV import.</summary>
/// <param name="Line">The physical line (1-based, the header is line 1) the row starts on; absent for an event the import made itself.</param>
/// <param name="Column">The column at fault, when the problem is one field's.</param>
/// <param name="Type">Problem type URI, ending in validation-failed, csv-syntax, line-too-long, too-many-columns or an engine rejection type.</param>
/// <param name="Message">What is wrong, and what to do.</param>
/// <param name="EventId">The row's eventId, once it is known.</param>
public sealed record ImportLineError(long? Line, string? Column, string Type, string Message, string? EventId = null);

/// <summary>What a snapshot import did beyond its rows.</summary>
/// <param name="Source">The snapshot's source.</param>
/// <param name="AsOf">The time the snapshot was taken; rows without countedAt are counts as of it.</param>
/// <param name="ZeroMissing">Whether positions the snapshot does not mention were to be counted as 0.</param>
/// <param name="Locations">The snapshot's locations: those its accepted rows name (what zeroMissing acts on).</param>
/// <param name="Zeroed">Counts of the zero counts made for unmentioned positions, when zeroMissing ran.</param>
/// <param name="ZeroSkipped">Why zeroMissing did not run, when it was asked for and did not.</param>
public sealed record SnapshotImportView(string Source, DateTimeOffset AsOf, bool ZeroMissing, IReadOnlyList<string>? Locations,
    ImportCounts? Zeroed, string? ZeroSkipped);

/// <summary>The answer to a CSV import: what became of every row, and the first problems by line.</summary>
/// <param name="Format">movements or snapshot.</param>
/// <param name="Complete">True when the whole file was read; false when the import stopped early (see the problem it came with).</param>
/// <param name="CorrelationId">The import's correlation id, given to every row without its own.</param>
/// <param name="LinesRead">Physical lines read, the header included.</param>
/// <param name="Rows">Data rows read (records; blank lines are not rows).</param>
/// <param name="Counts">Rows by outcome.</param>
/// <param name="ErrorsTotal">Problems found in all; only the first ones are listed.</param>
/// <param name="Errors">The first problems (at most 1,000), in file order.</param>
/// <param name="Snapshot">For a snapshot import: its parameters and what zeroMissing did.</param>
public sealed record ImportReport(string Format, bool Complete, string CorrelationId, long LinesRead, long Rows, ImportCounts Counts,
    long ErrorsTotal, IReadOnlyList<ImportLineError> Errors, SnapshotImportView? Snapshot);

/// <summary>The two CSV formats (see docs/csv-import.md).</summary>
internal enum CsvImportFormat
{
    /// <summary>One canonical event per row.</summary>
    Movements,
    /// <summary>onHand per position as of a time: one count per row.</summary>
    Snapshot,
}

/// <summary>The parameters of a snapshot, validated.</summary>
internal sealed record SnapshotParameters(string Source, DateTimeOffset AsOf, bool ZeroMissing);

/// <summary>How one import runs.</summary>
internal sealed record CsvImportSettings
{
    public required CsvImportFormat Format { get; init; }

    /// <summary>Longest record, in bytes.</summary>
    public required int LineBytesMax { get; init; }

    /// <summary>Most fields in one record.</summary>
    public required int ColumnsMax { get; init; }

    /// <summary>Most bytes read from the input.</summary>
    public long BodyBytesMax { get; init; } = long.MaxValue;

    /// <summary>Given to every row without a correlationId of its own.</summary>
    public required string CorrelationId { get; init; }

    /// <summary>Required for <see cref="CsvImportFormat.Snapshot"/>.</summary>
    public SnapshotParameters? Snapshot { get; init; }
}

/// <summary>Where the events of an import go: the engine in the hub, nowhere for a local check.</summary>
internal interface ICsvImportSink
{
    /// <summary>Decides up to 1,000 validated events and returns once they are durable.</summary>
    Task<EventOutcome[]> Apply(List<StockEvent> events);

    /// <summary>Positions at the locations whose latest count is older than <paramref name="asOf"/> (or that were never counted).</summary>
    Task<List<(string Sku, string LocationId)>> UncountedPositions(IReadOnlySet<string> locations, DateTimeOffset asOf);
}

/// <summary>Why an import stopped before the end of its input.</summary>
internal enum CsvImportStop
{
    /// <summary>It did not: the whole input was read.</summary>
    None,
    /// <summary>The input passed the byte limit.</summary>
    BodyTooLarge,
    /// <summary>The engine could not take a batch (queue full, standby, journal failure).</summary>
    EngineUnavailable,
}

/// <summary>The outcome of an import run.</summary>
internal abstract record CsvImportResult
{
    private CsvImportResult()
    {
    }

    /// <summary>The header is unusable: nothing was read past it and nothing changed.</summary>
    public sealed record HeaderRejected(string Detail, IReadOnlyDictionary<string, string[]> Errors) : CsvImportResult;

    /// <summary>The rows were read (all of them unless <paramref name="Stop"/> says otherwise).</summary>
    public sealed record Finished(ImportReport Report, CsvImportStop Stop, string? StopDetail) : CsvImportResult;
}

/// <summary>
/// The one CSV import, shared by the upload endpoints and the command line: it reads a file as a
/// stream of RFC 4180 records (never more than one record and two batches in memory), maps each
/// row to the JSON shape of one event and validates it with <see cref="EventEndpoints.ParseEvent"/>
/// — the code POST /v1/events runs — and hands the valid events to a sink in batches of up to
/// 1,000, in file order. The hub's sink is the engine; a local check has none.
/// </summary>
internal sealed class CsvImport
{
    /// <summary>Most problems listed in a report; the total is always counted.</summary>
    public const int ErrorsListedMax = 1000;

    private const string RowPath = "row";

    private static readonly Column[] MovementColumns =
    [
        new("eventId", "eventId", Required: true, Number: false),
        new("type", "type", Required: true, Number: false),
        new("sku", "sku", Required: true, Number: false),
        new("locationId", "locationId", Required: true, Number: false),
        new("quantity", "quantity", Required: true, Number: true),
        new("occurredAt", "occurredAt", Required: true, Number: false),
        new("source", "source", Required: true, Number: false),
        new("sourceSeq", "sourceSeq", Required: false, Number: true),
        new("reason", "reason", Required: false, Number: false),
        new("reservationId", "reservationId", Required: false, Number: false),
        new("toLocationId", "toLocationId", Required: false, Number: false),
        new("disposition", "disposition", Required: false, Number: false),
        new("correlationId", "correlationId", Required: false, Number: false),
    ];

    private static readonly Column[] SnapshotColumns =
    [
        new("sku", "sku", Required: true, Number: false),
        new("locationId", "locationId", Required: true, Number: false),
        new("onHand", "quantity", Required: true, Number: true),
        new("countedAt", "occurredAt", Required: false, Number: false),
    ];

    private static readonly JsonEncodedText EventIdName = JsonEncodedText.Encode("eventId");
    private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
    private static readonly JsonEncodedText SourceName = JsonEncodedText.Encode("source");
    private static readonly JsonEncodedText OccurredAtName = JsonEncodedText.Encode("occurredAt");
    private static readonly JsonEncodedText SkuName = JsonEncodedText.Encode("sku");
    private static readonly JsonEncodedText LocationIdName = JsonEncodedText.Encode("locationId");
    private static readonly JsonEncodedText QuantityName = JsonEncodedText.Encode("quantity");

    private readonly CsvImportSettings _settings;
    private readonly ICsvImportSink? _sink;
    private readonly ILogger? _log;
    private readonly CsvRecordReader _reader;
    private readonly Column[] _format;
    private readonly ArrayBufferWriter<byte> _json = new(1024);
    private readonly Utf8JsonWriter _writer;
    private readonly List<(string? Column, string Slug, string Message)> _rowErrors = [];
    private readonly List<ImportLineError> _errors = [];
    private readonly long[] _counts = new long[5];
    private readonly long[] _zeroCounts = new long[5];
    private readonly HashSet<string>? _locations;
    private readonly byte[] _idScratch;
    private readonly string? _asOfText;
    private Column?[] _columns = [];
    private int _skuField = -1;
    private int _locationField = -1;
    private int _countedAtField = -1;
    private long _rows;
    private long _invalid;
    private long _valid;
    private long _errorsTotal;
    private Batch _filling = new();

    private CsvImport(Stream input, CsvImportSettings settings, ICsvImportSink? sink, ILogger? log)
    {
        if (settings.Format == CsvImportFormat.Snapshot && settings.Snapshot is null)
        {
            throw new ArgumentException("A snapshot import needs its parameters.", nameof(settings));
        }
        _settings = settings;
        _sink = sink;
        _log = log;
        _reader = new CsvRecordReader(input, settings.LineBytesMax, settings.ColumnsMax, settings.BodyBytesMax);
        _format = settings.Format == CsvImportFormat.Movements ? MovementColumns : SnapshotColumns;
        _writer = new Utf8JsonWriter(_json);
        _idScratch = new byte[2 * settings.LineBytesMax + 512];
        if (settings.Snapshot is { } snapshot)
        {
            _asOfText = snapshot.AsOf.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
            _locations = snapshot.ZeroMissing ? new HashSet<string>(StringComparer.Ordinal) : null;
        }
    }

    /// <summary>
    /// Reads the whole input and applies its rows through <paramref name="sink"/> (or only validates
    /// them when it is null). Exceptions from reading the input (a cut-off upload) propagate; batches
    /// decided before them are durable.
    /// </summary>
    public static async Task<CsvImportResult> Run(Stream input, CsvImportSettings settings, ICsvImportSink? sink, ILogger? log,
        CancellationToken cancellationToken)
    {
        var import = new CsvImport(input, settings, sink, log);
        try
        {
            return await import.Run(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await import._writer.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The name of a format in reports and logs: movements or snapshot.</summary>
    public static string FormatName(CsvImportFormat format) => format == CsvImportFormat.Movements ? "movements" : "snapshot";

    /// <summary>
    /// Validates the parameters of a snapshot with the rules of event fields (source like an event's
    /// source, asOf an RFC 3339 timestamp with an offset); problems go to <paramref name="input"/>.
    /// </summary>
    public static SnapshotParameters? ParseSnapshotParameters(string? source, string? asOf, string? zeroMissing, JsonInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var document = JsonDocument.Parse(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string?>
        {
            ["source"] = source,
            ["asOf"] = asOf,
        }));
        var parsedSource = input.String(document.RootElement, "source", "source", required: true, Limits.IdLengthMax);
        var parsedAsOf = input.Timestamp(document.RootElement, "asOf", "asOf", required: true);
        var zero = false;
        if (zeroMissing is not null && !bool.TryParse(zeroMissing, out zero))
        {
            input.Invalid("zeroMissing", "must be true or false.");
        }
        return parsedSource is null || parsedAsOf is null || input.HasErrors ? null : new SnapshotParameters(parsedSource, parsedAsOf.Value, zero);
    }

    /// <summary>
    /// The eventId of a snapshot row: "snap-" and the first 20 bytes, in lowercase hex, of
    /// SHA-256(source, 0x00, asOf as UTC "yyyy-MM-ddTHH:mm:ss.fffffffZ", 0x00, sku, 0x00, locationId), all UTF-8.
    /// The same snapshot imported again gives the same ids, so its rows answer duplicate.
    /// </summary>
    public static string SnapshotEventId(string source, DateTimeOffset asOf, string sku, string locationId)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(sku);
        ArgumentNullException.ThrowIfNull(locationId);
        var asOfText = asOf.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
        var bytes = Encoding.UTF8.GetBytes($"{source}\0{asOfText}\0{sku}\0{locationId}");
        return "snap-" + Convert.ToHexStringLower(SHA256.HashData(bytes).AsSpan(0, 20));
    }

    private async Task<CsvImportResult> Run(CancellationToken cancellationToken)
    {
        if (await ReadHeader(cancellationToken).ConfigureAwait(false) is { } rejected)
        {
            return rejected;
        }
        var stop = CsvImportStop.None;
        string? stopDetail = null;
        Batch? flying = null;
        Task<EventOutcome[]>? inFlight = null;
        try
        {
            while (await _reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                _rows++;
                var e = ConvertRow();
                if (e is null)
                {
                    _invalid++;
                    continue;
                }
                if (_sink is null)
                {
                    _valid++;
                    continue;
                }
                _filling.Add(e, _reader.RecordLine);
                if (_filling.Events.Count == Limits.EventsPerRequestMax)
                {
                    // The next batch is parsed while this one is decided and made durable; it is submitted
                    // only after this one is answered, so the rows apply in file order.
                    if (inFlight is not null)
                    {
                        var done = inFlight;
                        inFlight = null;
                        Record(await done.ConfigureAwait(false), flying!);
                        flying = null;
                    }
                    flying = _filling;
                    inFlight = _sink.Apply(flying.Events);
                    _filling = new Batch();
                }
            }
            if (inFlight is not null)
            {
                var done = inFlight;
                inFlight = null;
                Record(await done.ConfigureAwait(false), flying!);
                flying = null;
            }
            Record(_filling.Events.Count > 0 ? await _sink!.Apply(_filling.Events).ConfigureAwait(false) : [], _filling);
            if (_reader.LimitExceeded)
            {
                stop = CsvImportStop.BodyTooLarge;
                stopDetail = $"The input passed the limit of {_settings.BodyBytesMax} bytes after line {_reader.LinesRead}.";
            }
        }
        catch (EngineUnavailableException ex)
        {
            // The batch that failed was not applied, nor was anything after it; the batches before it are
            // durable. The problems already found in the rows read are still listed, in file order.
            stop = CsvImportStop.EngineUnavailable;
            stopDetail = ex.Message;
            if (flying is not null)
            {
                Record([], flying);
            }
            Record([], _filling);
        }
        finally
        {
            if (inFlight is { } abandoned)
            {
                // Reading the input failed (the upload was cut off) while a batch was in the engine. That
                // batch completes on its own; its failure, if any, is logged because nobody awaits it.
                _ = abandoned.ContinueWith(t => _log?.LogWarning(t.Exception, "A batch of an abandoned CSV import failed; it was not applied."),
                    CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }

        SnapshotImportView? snapshot = null;
        if (_settings.Snapshot is { } parameters)
        {
            snapshot = await ZeroMissing(parameters, stop).ConfigureAwait(false);
        }
        var report = new ImportReport(FormatName(_settings.Format), stop == CsvImportStop.None,
            _settings.CorrelationId, _reader.LinesRead, _rows, Counts(_counts, _invalid, _sink is null ? _valid : null), _errorsTotal, _errors, snapshot);
        return new CsvImportResult.Finished(report, stop, stopDetail);
    }

    // ------------------------------------------------------------------ header

    private async Task<CsvImportResult.HeaderRejected?> ReadHeader(CancellationToken cancellationToken)
    {
        var names = string.Join(", ", _format.Select(c => c.Required ? c.Name : c.Name + " (optional)"));
        var kind = FormatName(_settings.Format);
        if (!await _reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return HeaderProblem($"The file is empty. Its first line must be a header naming the {kind} columns: {names}.");
        }
        var problem = _reader.Problem switch
        {
            CsvRecordProblem.TooLong => $"The header is longer than {_settings.LineBytesMax} bytes (ImportLineBytesMax).",
            CsvRecordProblem.TooManyFields => $"The header has more than {_settings.ColumnsMax} columns (ImportColumnsMax).",
            CsvRecordProblem.Unterminated => "The header has a quoted name that is never closed.",
            CsvRecordProblem.StrayQuote => "The header has a quote inside a name; quote whole names only (RFC 4180).",
            _ => null,
        };
        if (problem is not null)
        {
            return HeaderProblem(problem);
        }
        var messages = new List<string>();
        _columns = new Column?[_reader.FieldCount];
        for (var i = 0; i < _reader.FieldCount; i++)
        {
            var bytes = _reader.Field(i);
            if (!Utf8.IsValid(bytes))
            {
                messages.Add($"Column {i + 1} of the header is not valid UTF-8; the file must be UTF-8.");
                continue;
            }
            var name = Encoding.UTF8.GetString(bytes).Trim();
            var column = Array.Find(_format, c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase));
            if (column is null)
            {
                messages.Add(name.Length == 0
                    ? $"Column {i + 1} of the header has no name."
                    : $"'{Shorten(name)}' is not a column of the {kind} format; the columns are {names}.");
            }
            else if (Array.IndexOf(_columns, column) >= 0)
            {
                messages.Add($"The column '{column.Name}' appears more than once.");
            }
            _columns[i] = column;
        }
        foreach (var c in _format.Where(c => c.Required && Array.IndexOf(_columns, c) < 0))
        {
            messages.Add($"The required column '{c.Name}' is missing.");
        }
        _skuField = Array.FindIndex(_columns, c => c?.Name == "sku");
        _locationField = Array.FindIndex(_columns, c => c?.Name == "locationId");
        _countedAtField = Array.FindIndex(_columns, c => c?.Name == "countedAt");
        if (_settings.Snapshot is { ZeroMissing: true } && _countedAtField >= 0)
        {
            messages.Add("zeroMissing counts every unmentioned position as 0 as of asOf, which is only sound when every row is a count as of asOf: "
                + "remove the countedAt column, or import without zeroMissing.");
        }
        if (messages.Count > 0)
        {
            var detail = messages.Count == 1 ? messages[0] : $"{messages[0]} (and {messages.Count - 1} more problem(s))";
            return new CsvImportResult.HeaderRejected(detail, new Dictionary<string, string[]> { ["header"] = [.. messages] });
        }
        return null;
    }

    private static CsvImportResult.HeaderRejected HeaderProblem(string message) =>
        new(message, new Dictionary<string, string[]> { ["header"] = [message] });

    // ------------------------------------------------------------------ rows

    /// <summary>Validates the current record as one event; null (with its problems recorded) when it is not one.</summary>
    private StockEvent? ConvertRow()
    {
        var line = _reader.RecordLine;
        var recordProblem = _reader.Problem switch
        {
            CsvRecordProblem.TooLong => ("line-too-long", $"The row is longer than {_settings.LineBytesMax} bytes (ImportLineBytesMax); if it is not, a quote is probably left open."),
            CsvRecordProblem.TooManyFields => ("too-many-columns", $"The row has more than {_settings.ColumnsMax} fields (ImportColumnsMax)."),
            CsvRecordProblem.Unterminated => ("csv-syntax", "A quoted field is never closed: the file ends inside it."),
            CsvRecordProblem.StrayQuote => ("csv-syntax", "A quote appears inside an unquoted field or after a closing quote; quote the whole field and double the quotes inside it (RFC 4180)."),
            _ => default((string Slug, string Message)?),
        };
        if (recordProblem is { } p)
        {
            AddRowError(line, null, p.Slug, p.Message);
            return null;
        }
        if (_reader.FieldCount != _columns.Length)
        {
            AddRowError(line, null, "csv-syntax", $"The row has {_reader.FieldCount} field(s) but the header names {_columns.Length} column(s).");
            return null;
        }

        _rowErrors.Clear();
        _json.ResetWrittenCount();
        _writer.Reset(_json);
        _writer.WriteStartObject();
        string? eventId = null;
        if (_settings.Snapshot is { } snapshot)
        {
            eventId = DeriveEventId(snapshot.Source, _reader.Field(_skuField), _reader.Field(_locationField));
            _writer.WriteString(EventIdName, eventId);
            _writer.WriteString(TypeName, "counted"u8);
            _writer.WriteString(SourceName, snapshot.Source);
            if (_countedAtField < 0 || _reader.Field(_countedAtField).IsEmpty)
            {
                // A row without its own countedAt is a count as of the snapshot's asOf.
                _writer.WriteString(OccurredAtName, _asOfText);
            }
        }
        for (var i = 0; i < _columns.Length; i++)
        {
            var column = _columns[i]!;
            var value = _reader.Field(i);
            if (value.IsEmpty)
            {
                // An empty field is an absent field, as a missing member is in JSON.
                continue;
            }
            if (!Utf8.IsValid(value))
            {
                _rowErrors.Add((column.Name, "csv-syntax", "is not valid UTF-8; the file must be UTF-8."));
                continue;
            }
            if (column.Number)
            {
                if (Utf8Parser.TryParse(value, out long number, out var consumed) && consumed == value.Length)
                {
                    _writer.WriteNumber(column.Json, number);
                }
                else
                {
                    _rowErrors.Add((column.Name, "validation-failed", $"must be a whole number; got '{Shorten(Encoding.UTF8.GetString(value))}'."));
                }
                continue;
            }
            _writer.WriteString(column.Json, value);
            if (eventId is null && column.Name == "eventId")
            {
                eventId = Encoding.UTF8.GetString(value);
            }
        }
        _writer.WriteEndObject();
        _writer.Flush();

        using var document = JsonDocument.Parse(_json.WrittenMemory);
        var input = new JsonInput();
        var e = EventEndpoints.ParseEvent(document.RootElement, RowPath, input, _settings.CorrelationId);
        if (input.HasErrors)
        {
            foreach (var (field, messages) in ErrorsOf(input))
            {
                var column = ColumnOf(field);
                // A field that already failed here was left out of the JSON, so the shared rules call it missing; say it once.
                if (_rowErrors.Exists(x => x.Column == column))
                {
                    continue;
                }
                foreach (var message in messages)
                {
                    _rowErrors.Add((column, "validation-failed", message));
                }
            }
        }
        if (_rowErrors.Count > 0 || e is null)
        {
            foreach (var (column, slug, message) in _rowErrors)
            {
                AddRowError(line, column, slug, message, eventId);
            }
            return null;
        }
        return e;
    }

    /// <summary>The CSV column a field of the shared rules belongs to ("row.quantity" is onHand in a snapshot).</summary>
    private string? ColumnOf(string field)
    {
        var name = field.StartsWith(RowPath + ".", StringComparison.Ordinal) ? field[(RowPath.Length + 1)..] : field;
        return Array.Find(_format, c => c.JsonName == name)?.Name ?? name;
    }

    /// <summary>
    /// The errors a <see cref="JsonInput"/> collected. It keeps them private and shows them as the
    /// validation problem it would answer, whose <c>errors</c> member is part of the API contract.
    /// </summary>
    private static IReadOnlyDictionary<string, string[]> ErrorsOf(JsonInput input)
    {
        if (input.Result() is IValueHttpResult { Value: IReadOnlyDictionary<string, object?> problem }
            && problem.TryGetValue("errors", out var errors) && errors is IReadOnlyDictionary<string, string[]> byField)
        {
            return byField;
        }
        throw new InvalidOperationException("The validation problem has no 'errors' member; the CSV import cannot name the columns at fault.");
    }

    private string DeriveEventId(string source, ReadOnlySpan<byte> sku, ReadOnlySpan<byte> locationId)
    {
        // The same bytes as SnapshotEventId, without a string per row.
        var scratch = _idScratch.AsSpan();
        var n = Encoding.UTF8.GetBytes(source, scratch);
        scratch[n++] = 0;
        n += Encoding.UTF8.GetBytes(_asOfText!, scratch[n..]);
        scratch[n++] = 0;
        sku.CopyTo(scratch[n..]);
        n += sku.Length;
        scratch[n++] = 0;
        locationId.CopyTo(scratch[n..]);
        n += locationId.Length;
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(scratch[..n], hash);
        return "snap-" + Convert.ToHexStringLower(hash[..20]);
    }

    /// <summary>
    /// Counts the outcomes of a decided batch (none when it was not decided) and lists its problems —
    /// the rows that failed validation and the rows the engine rejected — merged in file order.
    /// </summary>
    private void Record(EventOutcome[] outcomes, Batch batch)
    {
        var rejections = new List<ImportLineError>();
        for (var i = 0; i < outcomes.Length; i++)
        {
            var o = outcomes[i];
            _counts[(int)o.Status]++;
            var e = batch.Events[i];
            if (o.Status == EventStatus.Rejected)
            {
                _errorsTotal++;
                if (_errors.Count + rejections.Count < ErrorsListedMax)
                {
                    rejections.Add(Error(batch.Lines[i], null, o.ErrorType!, o.ErrorDetail!, e.EventId));
                }
            }
            else
            {
                _locations?.Add(e.LocationId);
            }
        }
        int a = 0, b = 0;
        while (_errors.Count < ErrorsListedMax && (a < batch.Errors.Count || b < rejections.Count))
        {
            _errors.Add(b >= rejections.Count || (a < batch.Errors.Count && batch.Errors[a].Line <= rejections[b].Line)
                ? batch.Errors[a++]
                : rejections[b++]);
        }
    }

    /// <summary>A problem of the row being read; listed with its batch, so that the list stays in file order.</summary>
    private void AddRowError(long line, string? column, string slug, string message, string? eventId = null)
    {
        _errorsTotal++;
        if (_filling.Errors.Count < ErrorsListedMax)
        {
            _filling.Errors.Add(Error(line, column, slug, message, eventId));
        }
    }

    private void AddError(long? line, string? column, string slug, string message, string? eventId = null)
    {
        _errorsTotal++;
        if (_errors.Count < ErrorsListedMax)
        {
            _errors.Add(Error(line, column, slug, message, eventId));
        }
    }

    private static ImportLineError Error(long? line, string? column, string slug, string message, string? eventId) =>
        new(line, column, Problems.TypeBase + slug, message, eventId);

    // ------------------------------------------------------------------ snapshots: unmentioned positions

    private async Task<SnapshotImportView> ZeroMissing(SnapshotParameters parameters, CsvImportStop stop)
    {
        IReadOnlyList<string>? locations = _locations?.Order(StringComparer.Ordinal).ToArray();
        if (!parameters.ZeroMissing)
        {
            return new SnapshotImportView(parameters.Source, parameters.AsOf, false, locations, null, null);
        }
        var failed = _invalid + _counts[(int)EventStatus.Rejected];
        var skipped = stop != CsvImportStop.None ? "The import stopped before the end of the file, so the snapshot is not known to be whole."
            : failed > 0 ? $"{failed} row(s) failed. Unmentioned positions are counted as 0 only when every row of the snapshot is accepted; fix the rows and import the file again."
            : _sink is null ? "A local check cannot see the hub's positions."
            : null;
        if (skipped is not null)
        {
            return new SnapshotImportView(parameters.Source, parameters.AsOf, true, locations, null, skipped);
        }
        // Every position a row of this snapshot counted now has its latest count at asOf or later
        // (or a newer one, when the row was stale); what is older than asOf was not mentioned.
        var positions = await _sink!.UncountedPositions(_locations!, parameters.AsOf).ConfigureAwait(false);
        try
        {
            foreach (var chunk in positions.Chunk(Limits.EventsPerRequestMax))
            {
                var batch = new Batch();
                foreach (var (sku, locationId) in chunk)
                {
                    batch.Add(ZeroCount(parameters, sku, locationId), 0);
                }
                var outcomes = await _sink.Apply(batch.Events).ConfigureAwait(false);
                for (var i = 0; i < outcomes.Length; i++)
                {
                    _zeroCounts[(int)outcomes[i].Status]++;
                    if (outcomes[i].Status == EventStatus.Rejected)
                    {
                        AddError(null, null, outcomes[i].ErrorType!,
                            $"Counting {batch.Events[i].Sku} at {batch.Events[i].LocationId} as 0: {outcomes[i].ErrorDetail}", batch.Events[i].EventId);
                    }
                }
            }
        }
        catch (EngineUnavailableException ex)
        {
            return new SnapshotImportView(parameters.Source, parameters.AsOf, true, locations, Counts(_zeroCounts, 0, null),
                $"The engine became unavailable while zeroing ({ex.Message}); import the file again to finish.");
        }
        return new SnapshotImportView(parameters.Source, parameters.AsOf, true, locations, Counts(_zeroCounts, 0, null), null);
    }

    private StockEvent ZeroCount(SnapshotParameters parameters, string sku, string locationId) =>
        SnapshotCount(_json, _writer, parameters.Source, parameters.AsOf, sku, locationId, 0, _settings.CorrelationId);

    /// <summary>
    /// The count of one position in a snapshot of <paramref name="source"/> as of <paramref name="asOf"/>: a
    /// <c>counted</c> event with the id of <see cref="SnapshotEventId"/>, built through the JSON shape and rules of a
    /// snapshot row (<see cref="EventEndpoints.ParseEvent"/>), so that its id and fingerprint are the ones a row with
    /// the same values gets. The zero counts of zeroMissing and the counts of polling sources are made here, so the
    /// same fact arriving by two ways in is a duplicate, never a second count. <paramref name="buffer"/> and
    /// <paramref name="writer"/> are scratch space the caller reuses; the SKU and location must already be valid.
    /// </summary>
    internal static StockEvent SnapshotCount(ArrayBufferWriter<byte> buffer, Utf8JsonWriter writer, string source, DateTimeOffset asOf,
        string sku, string locationId, long onHand, string correlationId)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(writer);
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        writer.WriteStartObject();
        writer.WriteString(EventIdName, SnapshotEventId(source, asOf, sku, locationId));
        writer.WriteString(TypeName, "counted"u8);
        writer.WriteString(SkuName, sku);
        writer.WriteString(LocationIdName, locationId);
        writer.WriteNumber(QuantityName, onHand);
        writer.WriteString(OccurredAtName, asOf.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture));
        writer.WriteString(SourceName, source);
        writer.WriteEndObject();
        writer.Flush();
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        var input = new JsonInput();
        return EventEndpoints.ParseEvent(document.RootElement, RowPath, input, correlationId)
            ?? throw new InvalidOperationException($"The snapshot count of '{sku}' at '{locationId}' failed validation: {input.Describe()}");
    }

    private static ImportCounts Counts(long[] counts, long invalid, long? valid) =>
        new(counts[(int)EventStatus.Applied], counts[(int)EventStatus.Duplicate], counts[(int)EventStatus.Superseded],
            counts[(int)EventStatus.Stale], counts[(int)EventStatus.Rejected], invalid, valid);

    private static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "…";

    private sealed record Column(string Name, string JsonName, bool Required, bool Number)
    {
        public JsonEncodedText Json { get; } = JsonEncodedText.Encode(JsonName);
    }

    private sealed class Batch
    {
        public List<StockEvent> Events { get; } = new(Limits.EventsPerRequestMax);

        public List<long> Lines { get; } = new(Limits.EventsPerRequestMax);

        /// <summary>Problems of the rows read while this batch filled, those that failed validation included.</summary>
        public List<ImportLineError> Errors { get; } = [];

        public void Add(StockEvent e, long line)
        {
            Events.Add(e);
            Lines.Add(line);
        }
    }
}
