using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using Truestock.Core;
using Truestock.Server.Http;
using Truestock.Server.Ingestion;
using Truestock.Server.Storage;

namespace Truestock.Server.Reconciliation;

/// <summary>The parameters of a snapshot upload, validated.</summary>
/// <param name="System">erp, wms or channel.</param>
/// <param name="SystemId">The system's id; for a channel, the channel id.</param>
/// <param name="AsOf">When the system took the snapshot.</param>
/// <param name="Scope">full (everything the system holds at the snapshot's locations, or every SKU of the channel) or partial.</param>
internal sealed record SnapshotParameters(string System, string SystemId, DateTimeOffset AsOf, string Scope);

/// <summary>The answer to a snapshot upload.</summary>
/// <param name="SnapshotId">The stored snapshot's id (to start a run with).</param>
/// <param name="System">erp, wms or channel.</param>
/// <param name="SystemId">The system's id.</param>
/// <param name="AsOf">When the system took the snapshot.</param>
/// <param name="Kind">full or partial.</param>
/// <param name="LinesRead">Physical lines read, the header included.</param>
/// <param name="Rows">Data rows read.</param>
/// <param name="Stored">Rows stored.</param>
/// <param name="Invalid">Rows that failed validation (or repeated a SKU and location) and were not stored.</param>
/// <param name="ErrorsTotal">Problems found in all.</param>
/// <param name="Errors">The first problems (at most 1,000), in file order.</param>
public sealed record SnapshotUploadReport(long SnapshotId, string System, string SystemId, DateTimeOffset AsOf, string Kind, long LinesRead, long Rows,
    long Stored, long Invalid, long ErrorsTotal, IReadOnlyList<ImportLineError> Errors);

/// <summary>How a snapshot upload ended.</summary>
internal abstract record SnapshotUploadResult
{
    private SnapshotUploadResult()
    {
    }

    /// <summary>The header is unusable; nothing was stored.</summary>
    public sealed record HeaderRejected(string Detail, IReadOnlyDictionary<string, string[]> Errors) : SnapshotUploadResult;

    /// <summary>The body or the rows passed a limit; what was stored has been deleted.</summary>
    public sealed record TooLarge(string Detail) : SnapshotUploadResult;

    /// <summary>The whole body was read and the snapshot is stored.</summary>
    public sealed record Stored(SnapshotUploadReport Report) : SnapshotUploadResult;
}

/// <summary>
/// Reads a snapshot body as a stream of CSV records (<see cref="CsvRecordReader"/>: never more than one record in
/// memory), validates each row and stores the valid ones in batches, so a snapshot of millions of rows passes through
/// a fixed amount of memory. The rows are not events: a snapshot says what another system believes, and only a run
/// compares it with the hub; nothing here touches the ledger.
/// </summary>
internal sealed class SnapshotUpload
{
    /// <summary>Most problems listed; all are counted.</summary>
    public const int ErrorsListedMax = 1000;

    /// <summary>Rows stored per transaction.</summary>
    private const int BatchRows = 2000;

    private const int ColumnsMax = 16;

    private readonly AdoJournal _journal;
    private readonly ReconciliationOptions _options;
    private readonly SnapshotParameters _parameters;
    private readonly List<ImportLineError> _errors = [];
    private readonly List<ReconRow> _batch = new(BatchRows);
    private long _errorsTotal;
    private long _invalid;
    private long _stored;

    private int _sku = -1;
    private int _location = -1;
    private int _quantity = -1;
    private int _damaged = -1;
    private int _inspection = -1;
    private int _unitCost = -1;

    private SnapshotUpload(AdoJournal journal, ReconciliationOptions options, SnapshotParameters parameters)
    {
        _journal = journal;
        _options = options;
        _parameters = parameters;
    }

    private bool IsChannel => _parameters.System == ReconSystems.Channel;

    /// <summary>Reads and stores a snapshot body; exceptions from reading it (a cut-off upload) propagate after the partial snapshot is deleted.</summary>
    public static async Task<SnapshotUploadResult> Run(Stream body, AdoJournal journal, ReconciliationOptions options, SnapshotParameters parameters,
        DateTimeOffset now, string correlationId, CancellationToken cancellationToken)
    {
        var upload = new SnapshotUpload(journal, options, parameters);
        var reader = new CsvRecordReader(body, options.SnapshotLineBytesMax, ColumnsMax, options.SnapshotBodyBytesMax);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return Header("The body is empty: send a header row first (" + upload.Expected() + ").");
        }
        if (upload.ReadHeader(reader) is { } rejected)
        {
            return rejected;
        }
        var snapshotId = journal.CreateReconSnapshot(parameters.System, parameters.SystemId, parameters.AsOf, parameters.Scope, now, correlationId);
        var completed = false;
        try
        {
            long rows = 0;
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows++;
                if (rows > options.SnapshotRowsMax)
                {
                    journal.DeleteReconSnapshot(snapshotId);
                    completed = true;
                    return new SnapshotUploadResult.TooLarge(
                        $"Snapshots are limited to {options.SnapshotRowsMax} rows (Reconciliation:SnapshotRowsMax); nothing was kept. Split the snapshot by location and upload each part as partial.");
                }
                upload.Row(reader);
                if (upload._batch.Count == BatchRows)
                {
                    upload.Flush(snapshotId);
                }
            }
            if (reader.LimitExceeded)
            {
                journal.DeleteReconSnapshot(snapshotId);
                completed = true;
                return new SnapshotUploadResult.TooLarge(
                    $"Snapshots are limited to {options.SnapshotBodyBytesMax} bytes (Reconciliation:SnapshotBodyBytesMax); nothing was kept. Split the snapshot by location and upload each part as partial.");
            }
            upload.Flush(snapshotId);
            journal.FinishReconSnapshot(snapshotId, upload._stored, upload._invalid);
            // Repeated rows are found when their batch is stored, after the rows read with it: put the list back in file order.
            upload._errors.Sort((x, y) => Nullable.Compare(x.Line, y.Line));
            completed = true;
            return new SnapshotUploadResult.Stored(new SnapshotUploadReport(snapshotId, parameters.System, parameters.SystemId, parameters.AsOf,
                parameters.Scope, reader.LinesRead, rows, upload._stored, upload._invalid, upload._errorsTotal, upload._errors));
        }
        finally
        {
            if (!completed)
            {
                // The upload broke off (the client went away, the body was cut): a half snapshot must never be run, so it goes.
                journal.DeleteReconSnapshot(snapshotId);
            }
        }
    }

    private string Expected() => IsChannel ? "sku,available[,unitCost]" : "sku,locationId,onHand[,damaged,inspection,unitCost]";

    private static SnapshotUploadResult.HeaderRejected Header(string message) =>
        new(message, new Dictionary<string, string[]> { ["header"] = [message] });

    private SnapshotUploadResult.HeaderRejected? ReadHeader(CsvRecordReader reader)
    {
        if (reader.Problem != CsvRecordProblem.None)
        {
            return Header($"The header row is not a valid CSV record ({reader.Problem}); expected {Expected()}.");
        }
        var problems = new List<string>();
        for (var i = 0; i < reader.FieldCount; i++)
        {
            var field = reader.Field(i);
            if (i == 0 && field.StartsWith("\uFEFF"u8))
            {
                field = field[3..];
            }
            var name = Encoding.UTF8.GetString(field).Trim().ToLowerInvariant();
            ref var slot = ref _sku;
            switch (name)
            {
                case "sku":
                    slot = ref _sku;
                    break;
                case "locationid" when !IsChannel:
                    slot = ref _location;
                    break;
                case "onhand" when !IsChannel:
                case "available" when IsChannel:
                    slot = ref _quantity;
                    break;
                case "damaged" when !IsChannel:
                    slot = ref _damaged;
                    break;
                case "inspection" when !IsChannel:
                    slot = ref _inspection;
                    break;
                case "unitcost":
                    slot = ref _unitCost;
                    break;
                default:
                    problems.Add($"Unknown column '{name}'; a {_parameters.System} snapshot has {Expected()}.");
                    continue;
            }
            if (slot >= 0)
            {
                problems.Add($"Column '{name}' is named twice.");
            }
            slot = i;
        }
        if (_sku < 0 || _quantity < 0 || (!IsChannel && _location < 0))
        {
            problems.Add($"A required column is missing; a {_parameters.System} snapshot has {Expected()}.");
        }
        return problems.Count == 0 ? null : new SnapshotUploadResult.HeaderRejected(string.Join(' ', problems),
            new Dictionary<string, string[]> { ["header"] = [.. problems] });
    }

    private void Row(CsvRecordReader reader)
    {
        var line = reader.RecordLine;
        var problem = reader.Problem switch
        {
            CsvRecordProblem.TooLong => ("line-too-long", $"The row is longer than {_options.SnapshotLineBytesMax} bytes (Reconciliation:SnapshotLineBytesMax)."),
            CsvRecordProblem.TooManyFields => ("too-many-columns", $"The row has more than {ColumnsMax} fields."),
            CsvRecordProblem.Unterminated => ("csv-syntax", "A quoted field is never closed: the file ends inside it."),
            CsvRecordProblem.StrayQuote => ("csv-syntax", "A quote appears inside an unquoted field or after a closing quote (RFC 4180)."),
            _ => default((string, string)?),
        };
        if (problem is { } p)
        {
            Fail(line, null, p.Item1, p.Item2);
            _invalid++;
            return;
        }
        var columns = Math.Max(Math.Max(_sku, _location), Math.Max(Math.Max(_quantity, _damaged), Math.Max(_inspection, _unitCost))) + 1;
        if (reader.FieldCount < columns)
        {
            Fail(line, null, "csv-syntax", $"The row has {reader.FieldCount} field(s) but the header names {columns} column(s).");
            _invalid++;
            return;
        }
        var errorsBefore = _errorsTotal;
        var sku = Text(reader, _sku, line, "sku", s => JsonInput.IsSku(s) ? null : "must be 1–64 characters without control characters.");
        var location = IsChannel ? "" : Text(reader, _location, line, "locationId",
            s => JsonInput.IsId(s) ? null : "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
        var quantity = Number(reader, _quantity, line, IsChannel ? "available" : "onHand", required: true);
        var damaged = Number(reader, _damaged, line, "damaged", required: false);
        var inspection = Number(reader, _inspection, line, "inspection", required: false);
        decimal? unitCost = null;
        if (_unitCost >= 0 && !reader.Field(_unitCost).IsEmpty)
        {
            var text = Encoding.UTF8.GetString(reader.Field(_unitCost));
            if (decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var cost) && cost <= 1_000_000_000m)
            {
                unitCost = cost;
            }
            else
            {
                Fail(line, "unitCost", "validation-failed", "must be a decimal number of 0 or more with a '.' separator, e.g. 12.50.");
            }
        }
        if (_errorsTotal != errorsBefore || sku is null || location is null || quantity is null)
        {
            _invalid++;
            return;
        }
        _batch.Add(new ReconRow(sku, location, line, quantity.Value, damaged, inspection, unitCost));
    }

    private string? Text(CsvRecordReader reader, int index, long line, string column, Func<string, string?> rule)
    {
        var field = reader.Field(index);
        if (field.IsEmpty)
        {
            Fail(line, column, "validation-failed", "is required.");
            return null;
        }
        if (!Utf8.IsValid(field))
        {
            Fail(line, column, "csv-syntax", "is not valid UTF-8; the file must be UTF-8.");
            return null;
        }
        var text = Encoding.UTF8.GetString(field);
        if (rule(text) is { } message)
        {
            Fail(line, column, "validation-failed", message);
            return null;
        }
        return text;
    }

    private long? Number(CsvRecordReader reader, int index, long line, string column, bool required)
    {
        if (index < 0 || reader.Field(index).IsEmpty)
        {
            if (required)
            {
                Fail(line, column, "validation-failed", "is required.");
            }
            return null;
        }
        var field = reader.Field(index);
        if (!Utf8Parser.TryParse(field, out long n, out var consumed) || consumed != field.Length || n < 0 || n > Limits.QuantityMax)
        {
            Fail(line, column, "validation-failed", $"must be a whole number from 0 to {Limits.QuantityMax}.");
            return null;
        }
        return n;
    }

    private void Flush(long snapshotId)
    {
        if (_batch.Count == 0)
        {
            return;
        }
        var repeated = _journal.InsertReconRows(snapshotId, _batch);
        foreach (var i in repeated)
        {
            var r = _batch[i];
            Fail(r.Line, null, "duplicate-row", IsChannel
                ? $"SKU '{r.Sku}' appears earlier in the snapshot; only its first row is kept."
                : $"SKU '{r.Sku}' at '{r.LocationId}' appears earlier in the snapshot; only its first row is kept.");
            _invalid++;
        }
        _stored += _batch.Count - repeated.Count;
        _batch.Clear();
    }

    private void Fail(long line, string? column, string slug, string message)
    {
        _errorsTotal++;
        if (_errors.Count < ErrorsListedMax)
        {
            _errors.Add(new ImportLineError(line, column, Problems.TypeBase + slug, message));
        }
    }
}

/// <summary>The kinds of system a snapshot comes from.</summary>
internal static class ReconSystems
{
    public const string Erp = "erp";
    public const string Wms = "wms";
    public const string Channel = "channel";

    public static bool IsKnown(string? system) => system is Erp or Wms or Channel;
}
