using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>
/// The command line of CSV imports: <c>import movements FILE</c> and <c>import snapshot FILE --source S --as-of T</c>.
/// It streams the file to a running hub's upload endpoint (the hub parses it with <see cref="CsvImport"/>,
/// decides it and stays the only writer of its store; this command never opens the store), shows
/// progress on stderr, and prints the hub's per-line problems and a summary. <c>--check</c> runs the
/// same <see cref="CsvImport"/> locally instead, to validate a file without a hub.
/// </summary>
internal static class CsvImportCommand
{
    /// <summary>Every row was imported (applied, duplicate, superseded or stale).</summary>
    public const int ExitOk = 0;
    /// <summary>The whole file was read but some rows failed (or zeroMissing could not run); the others were applied.</summary>
    public const int ExitRowsFailed = 1;
    /// <summary>The command line is wrong, or the file cannot be read.</summary>
    public const int ExitUsage = 2;
    /// <summary>The hub refused the file as a whole (header, size, key) or the import stopped before the end.</summary>
    public const int ExitIncomplete = 3;
    /// <summary>The hub could not be reached or was unavailable; running the same import again is safe.</summary>
    public const int ExitUnavailable = 4;

    private const string EnvHub = "TRUESTOCK_HUB";
    private const string EnvApiKey = "TRUESTOCK_API_KEY";
    private const string StartHint = "Start it with 'dotnet run --project src/Truestock.Server' (it listens on " + HubApp.DefaultUrl + "), or pass --hub URL.";

    private const string Usage = """
        usage:
          import movements FILE [--hub URL] [--api-key KEY] [--json] [--check]
          import snapshot  FILE --source SOURCE --as-of TIME [--zero-missing] [--hub URL] [--api-key KEY] [--json] [--check]

        FILE is a UTF-8 CSV file with a header row, or - for standard input (see docs/csv-import.md).
          --hub URL       the hub (default $TRUESTOCK_HUB, else http://127.0.0.1:5080)
          --api-key KEY   an API key with the events:write scope (default $TRUESTOCK_API_KEY)
          --source S      snapshot: the system it comes from; part of every row's eventId
          --as-of T       snapshot: when it was taken, RFC 3339 with an offset (2026-11-23T06:00:00Z)
          --zero-missing  snapshot: count positions it does not mention, at its locations, as 0
          --json          print the hub's report as JSON instead of text
          --check         validate the file locally with the hub's rules; sends nothing
        exit codes: 0 all rows imported, 1 some rows failed, 2 usage, 3 refused or stopped early, 4 hub unreachable or unavailable
        """;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>Runs the command on the console; Ctrl+C stops the upload.</summary>
    public static async Task<int> Run(string[] args)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            // The first Ctrl+C stops the upload cleanly so the summary says what was sent.
            e.Cancel = true;
            cancel.Cancel();
        };
        return await Run(args, Console.Out, Console.Error, progressInPlace: !Console.IsErrorRedirected, handler: null, cancel.Token);
    }

    /// <summary>Runs the command with the given writers (tests pass their own); returns the exit code.</summary>
    public static async Task<int> Run(IReadOnlyList<string> args, TextWriter output, TextWriter progress, bool progressInPlace,
        HttpMessageHandler? handler, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(progress);
        if (Parse(args, out var error) is not { } command)
        {
            await progress.WriteLineAsync(error is null ? Usage : $"error: {error}{Environment.NewLine}{Environment.NewLine}{Usage}");
            return error is null ? ExitOk : ExitUsage;
        }
        Stream file;
        try
        {
            file = command.Path == "-"
                ? Console.OpenStandardInput()
                : new FileStream(command.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            await progress.WriteLineAsync($"error: cannot read {command.Path}: {ex.Message}");
            return ExitUsage;
        }
        await using var _ = file;
        var counted = new ProgressStream(file, file.CanSeek ? file.Length : null);
        var meter = ProgressMeter.Start(counted, progress, progressInPlace);
        try
        {
            return command.Check
                ? await Check(command, counted, output, meter, cancellationToken)
                : await Upload(command, counted, output, meter, handler, cancellationToken);
        }
        finally
        {
            await meter.Stop();
        }
    }

    // ------------------------------------------------------------------ upload

    private static async Task<int> Upload(Command command, ProgressStream file, TextWriter output, ProgressMeter meter, HttpMessageHandler? handler,
        CancellationToken cancellationToken)
    {
        using var client = new HttpClient(handler ?? new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) }, disposeHandler: handler is null)
        {
            // An import of a large file takes minutes; progress shows it is alive.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        var correlationId = "import-" + Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(command.Hub, command.EndpointPath()));
        // With 100-continue the hub can refuse the file (size, key, media type) before a byte of it is sent.
        request.Headers.ExpectContinue = true;
        request.Headers.Add(Correlation.Header, correlationId);
        if (!string.IsNullOrEmpty(command.ApiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", command.ApiKey);
        }
        var content = new StreamContent(file, 64 * 1024);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/csv") { CharSet = "utf-8" };
        content.Headers.ContentLength = file.Total;
        request.Content = content;

        HttpResponseMessage response;
        string body;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            body = await response.Content.ReadAsStringAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await meter.Stop();
            await output.WriteLineAsync($"Interrupted after {file.Lines:N0} line(s) were sent. The rows the hub decided before the interruption are applied "
                + "and durable, the others are not; import the same file again to finish (rows already applied answer duplicate).");
            return ExitIncomplete;
        }
        catch (HttpRequestException ex) when (file.BytesRead == 0 && ex.InnerException is SocketException or null)
        {
            await meter.Stop();
            var reason = ex.InnerException is SocketException socket ? Describe(socket.SocketErrorCode) : ex.Message;
            await output.WriteLineAsync($"Cannot reach the hub at {command.Hub} ({reason}). Is it running? {StartHint}");
            return ExitUnavailable;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            await meter.Stop();
            await output.WriteLineAsync($"The connection to the hub at {command.Hub} broke after {file.Lines:N0} line(s) were sent ({ex.Message}). "
                + "The rows it had decided were applied and are durable; import the same file again to finish (rows already applied answer duplicate).");
            return ExitUnavailable;
        }
        using var _ = response;
        await meter.Stop();

        if (response.StatusCode == HttpStatusCode.OK)
        {
            var report = JsonSerializer.Deserialize<ImportReport>(body, Json)
                ?? throw new InvalidOperationException("The hub answered 200 without a report.");
            await PrintReport(output, command, report, meter.Elapsed);
            return Failed(report) ? ExitRowsFailed : ExitOk;
        }
        return await PrintProblem(output, command, response, body, meter.Elapsed);
    }

    private static string Describe(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => "connection refused",
        SocketError.HostNotFound or SocketError.NoData => "unknown host",
        SocketError.TimedOut => "timed out",
        SocketError.NetworkUnreachable or SocketError.HostUnreachable => "unreachable network",
        _ => error.ToString(),
    };

    private static async Task<int> PrintProblem(TextWriter output, Command command, HttpResponseMessage response, string body, TimeSpan elapsed)
    {
        var status = (int)response.StatusCode;
        JsonElement problem = default;
        var isProblem = response.Content.Headers.ContentType?.MediaType == Problems.ContentType;
        if (isProblem)
        {
            using var document = JsonDocument.Parse(body);
            problem = document.RootElement.Clone();
        }
        var detail = isProblem && problem.TryGetProperty("detail", out var d) ? d.GetString() : body.Length > 500 ? body[..500] : body;
        var type = isProblem && problem.TryGetProperty("type", out var t) ? Slug(t.GetString()) : null;
        await output.WriteLineAsync($"The hub answered {status}{(type is null ? "" : $" ({type})")}: {detail}");
        if (isProblem && problem.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
        {
            foreach (var field in errors.EnumerateObject())
            {
                foreach (var message in field.Value.EnumerateArray())
                {
                    await output.WriteLineAsync($"  {field.Name}: {message.GetString()}");
                }
            }
        }
        if (isProblem && problem.TryGetProperty("import", out var partial))
        {
            var report = partial.Deserialize<ImportReport>(Json)!;
            await PrintReport(output, command, report, elapsed);
        }
        switch (response.StatusCode)
        {
            case HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden:
                await output.WriteLineAsync($"Pass an API key with the events:write scope: --api-key KEY, or set {EnvApiKey}.");
                return ExitIncomplete;
            case HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed:
                await output.WriteLineAsync($"{command.Hub} does not offer CSV imports; is it a Truestock hub of this version? Pass the right one with --hub URL.");
                return ExitIncomplete;
            case HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout:
                await output.WriteLineAsync("Try again shortly: importing the same file again is safe (rows already applied answer duplicate).");
                return ExitUnavailable;
            default:
                return ExitIncomplete;
        }
    }

    // ------------------------------------------------------------------ local check

    private static async Task<int> Check(Command command, ProgressStream file, TextWriter output, ProgressMeter meter, CancellationToken cancellationToken)
    {
        var defaults = new HubOptions();
        var settings = new CsvImportSettings
        {
            Format = command.Format,
            LineBytesMax = defaults.ImportLineBytesMax,
            ColumnsMax = defaults.ImportColumnsMax,
            BodyBytesMax = defaults.ImportBodyBytesMax,
            CorrelationId = "check",
            Snapshot = command.Snapshot,
        };
        var result = await CsvImport.Run(file, settings, sink: null, log: null, cancellationToken);
        await meter.Stop();
        switch (result)
        {
            case CsvImportResult.HeaderRejected header:
                await output.WriteLineAsync($"The header is invalid: {header.Detail}");
                foreach (var message in header.Errors.SelectMany(e => e.Value))
                {
                    await output.WriteLineAsync($"  {message}");
                }
                return ExitIncomplete;
            case CsvImportResult.Finished finished:
                await PrintReport(output, command, finished.Report, meter.Elapsed);
                if (finished.Stop != CsvImportStop.None)
                {
                    await output.WriteLineAsync(finished.StopDetail);
                    return ExitIncomplete;
                }
                return Failed(finished.Report) ? ExitRowsFailed : ExitOk;
            default:
                throw new InvalidOperationException($"Unknown import result {result.GetType().Name}.");
        }
    }

    // ------------------------------------------------------------------ report

    private static bool Failed(ImportReport report) =>
        report.Counts.Invalid + report.Counts.Rejected > 0 || report.ErrorsTotal > 0 || report.Snapshot is { ZeroMissing: true, ZeroSkipped: not null };

    private static async Task PrintReport(TextWriter output, Command command, ImportReport report, TimeSpan elapsed)
    {
        if (command.Json)
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(report, Json));
            return;
        }
        if (report.Errors.Count > 0)
        {
            await output.WriteLineAsync(report.ErrorsTotal > report.Errors.Count
                ? $"Problems (the first {report.Errors.Count:N0} of {report.ErrorsTotal:N0}):"
                : $"Problems ({report.ErrorsTotal:N0}):");
            foreach (var e in report.Errors)
            {
                var where = e.Line is { } line ? $"line {line}" : "zeroing";
                var column = e.Column is null ? "" : $", {e.Column}";
                var id = e.EventId is null ? "" : $" (eventId {e.EventId})";
                await output.WriteLineAsync($"  {where}{column}: {e.Message} [{Slug(e.Type)}]{id}");
            }
        }
        var c = report.Counts;
        var verb = command.Check ? "Checked" : report.Complete ? "Imported" : "Partly imported";
        await output.WriteLineAsync(
            $"{verb} {command.Path} ({report.Format}): {report.Rows:N0} row(s) on {report.LinesRead:N0} line(s) in {elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");
        await output.WriteLineAsync(c.Valid is { } valid
            ? $"  valid {valid:N0} · invalid {c.Invalid:N0}"
            : $"  applied {c.Applied:N0} · duplicate {c.Duplicate:N0} · superseded {c.Superseded:N0} · stale {c.Stale:N0} · rejected {c.Rejected:N0} · invalid {c.Invalid:N0}");
        if (report.Snapshot is { } s)
        {
            var z = s.Zeroed;
            await output.WriteLineAsync(s switch
            {
                { ZeroMissing: false } => "  positions the snapshot does not mention were left as they are (no --zero-missing)",
                { ZeroSkipped: { } why } => $"  unmentioned positions were NOT counted as 0: {why}",
                _ => $"  unmentioned positions at {string.Join(", ", s.Locations ?? [])} counted as 0: applied {z!.Applied:N0} · duplicate {z.Duplicate:N0} · stale {z.Stale:N0} · rejected {z.Rejected:N0}",
            });
        }
        if (!command.Check)
        {
            await output.WriteLineAsync($"  correlation id {report.CorrelationId} (on every row without its own, in the ledger)");
        }
        var failed = c.Invalid + c.Rejected;
        if (failed > 0)
        {
            await output.WriteLineAsync(command.Check
                ? $"{failed:N0} row(s) are invalid; fix them before importing."
                : $"{failed:N0} row(s) failed and changed nothing; fix them and import the file again (rows already applied answer duplicate).");
        }
    }

    private static string? Slug(string? type) => type is null ? null : type.StartsWith(Problems.TypeBase, StringComparison.Ordinal) ? type[Problems.TypeBase.Length..] : type;

    // ------------------------------------------------------------------ command line

    private sealed record Command(CsvImportFormat Format, string Path, Uri Hub, string? ApiKey, SnapshotParameters? Snapshot, bool Json, bool Check)
    {
        public string EndpointPath() => Snapshot is not { } s
            ? "v1/imports/movements"
            : $"v1/imports/snapshots?source={Uri.EscapeDataString(s.Source)}&asOf={Uri.EscapeDataString(s.AsOf.ToString("O", CultureInfo.InvariantCulture))}"
                + (s.ZeroMissing ? "&zeroMissing=true" : "");
    }

    /// <summary>Parses the arguments after "import"; null with an error (or none, for --help).</summary>
    private static Command? Parse(IReadOnlyList<string> args, out string? error)
    {
        error = null;
        if (args.Count == 0 || args[0] is "-h" or "--help" or "help")
        {
            error = args.Count == 0 ? "name what to import: movements or snapshot." : null;
            return null;
        }
        CsvImportFormat format;
        switch (args[0])
        {
            case "movements":
                format = CsvImportFormat.Movements;
                break;
            case "snapshot" or "snapshots":
                format = CsvImportFormat.Snapshot;
                break;
            default:
                error = $"'{args[0]}' is not something to import: use movements or snapshot.";
                return null;
        }
        string? path = null, hub = null, apiKey = null, source = null, asOf = null;
        bool zeroMissing = false, json = false, check = false;
        for (var i = 1; i < args.Count; i++)
        {
            var arg = args[i];
            var eq = arg.StartsWith("--", StringComparison.Ordinal) ? arg.IndexOf('=', StringComparison.Ordinal) : -1;
            var name = eq > 0 ? arg[..eq] : arg;
            string? value = null;
            if (name is "--hub" or "--api-key" or "--source" or "--as-of")
            {
                value = eq > 0 ? arg[(eq + 1)..] : i + 1 < args.Count ? args[++i] : null;
                if (string.IsNullOrEmpty(value))
                {
                    error = $"{name} needs a value.";
                    return null;
                }
            }
            switch (name)
            {
                case "--hub":
                    hub = value;
                    break;
                case "--api-key":
                    apiKey = value;
                    break;
                case "--source":
                    source = value;
                    break;
                case "--as-of":
                    asOf = value;
                    break;
                case "--zero-missing":
                    zeroMissing = true;
                    break;
                case "--json":
                    json = true;
                    break;
                case "--check":
                    check = true;
                    break;
                case "-h" or "--help":
                    return null;
                default:
                    if (arg.StartsWith("--", StringComparison.Ordinal) || path is not null)
                    {
                        error = $"unknown argument '{arg}'.";
                        return null;
                    }
                    path = arg;
                    break;
            }
        }
        if (path is null)
        {
            error = "name the CSV file to import (or - for standard input).";
            return null;
        }
        hub ??= Environment.GetEnvironmentVariable(EnvHub) ?? HubApp.DefaultUrl;
        if (!Uri.TryCreate(hub.EndsWith('/') ? hub : hub + "/", UriKind.Absolute, out var hubUri) || hubUri.Scheme is not ("http" or "https"))
        {
            error = $"--hub must be an http(s) URL like {HubApp.DefaultUrl}; got '{hub}'.";
            return null;
        }
        apiKey ??= Environment.GetEnvironmentVariable(EnvApiKey);
        SnapshotParameters? snapshot = null;
        if (format == CsvImportFormat.Snapshot)
        {
            var input = new JsonInput();
            snapshot = CsvImport.ParseSnapshotParameters(source, asOf, zeroMissing ? "true" : null, input);
            if (input.Describe() is { } problems)
            {
                error = problems.Replace("source:", "--source", StringComparison.Ordinal).Replace("asOf:", "--as-of", StringComparison.Ordinal);
                return null;
            }
        }
        else if (source is not null || asOf is not null || zeroMissing)
        {
            error = "--source, --as-of and --zero-missing are for snapshots; movements carry their own source and occurredAt.";
            return null;
        }
        return new Command(format, path, hubUri, apiKey, snapshot, json, check);
    }

    // ------------------------------------------------------------------ progress

    /// <summary>Counts the bytes and line breaks read from the file as it is sent.</summary>
    private sealed class ProgressStream(Stream inner, long? total) : Stream
    {
        private long _bytes;
        private long _lines;
        private int _done;

        public long? Total => total;

        public long BytesRead => Interlocked.Read(ref _bytes);

        public long Lines => Interlocked.Read(ref _lines);

        public bool Done => Volatile.Read(ref _done) == 1;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => BytesRead;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Count(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            return Count(buffer.Span[..read]);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Count(ReadOnlySpan<byte> read)
        {
            if (read.IsEmpty)
            {
                Volatile.Write(ref _done, 1);
                return 0;
            }
            Interlocked.Add(ref _lines, read.Count((byte)'\n'));
            Interlocked.Add(ref _bytes, read.Length);
            return read.Length;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>
    /// Shows lines, rate and percent of bytes on stderr: in place four times a second on a terminal,
    /// a line every ten seconds otherwise (a log file would fill with carriage returns).
    /// </summary>
    private sealed class ProgressMeter
    {
        private readonly ProgressStream _file;
        private readonly TextWriter _writer;
        private readonly bool _inPlace;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly CancellationTokenSource _stop = new();
        private Task _run = Task.CompletedTask;
        private int _shownLength;
        private int _stopped;

        private ProgressMeter(ProgressStream file, TextWriter writer, bool inPlace)
        {
            _file = file;
            _writer = writer;
            _inPlace = inPlace;
        }

        public TimeSpan Elapsed => _clock.Elapsed;

        public static ProgressMeter Start(ProgressStream file, TextWriter writer, bool inPlace)
        {
            var meter = new ProgressMeter(file, writer, inPlace);
            meter._run = meter.Run();
            return meter;
        }

        private async Task Run()
        {
            using var timer = new PeriodicTimer(_inPlace ? TimeSpan.FromMilliseconds(250) : TimeSpan.FromSeconds(10));
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token))
                {
                    await Show(final: false);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                // Stop() ended the display; it writes the last state itself once this loop is done.
            }
        }

        /// <summary>Ends the display with the final counts; the report follows on its own lines.</summary>
        public async Task Stop()
        {
            if (Interlocked.Exchange(ref _stopped, 1) == 1)
            {
                return;
            }
            _clock.Stop();
            await _stop.CancelAsync();
            await _run;
            _stop.Dispose();
            if (_file.BytesRead > 0)
            {
                await Show(final: true);
            }
            if (_inPlace && _shownLength > 0)
            {
                // The report starts on a line of its own, below the last state of the display.
                await _writer.WriteLineAsync();
            }
        }

        private async Task Show(bool final)
        {
            var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
            var lines = _file.Lines;
            var bytes = _file.BytesRead;
            var text = $"{lines,12:N0} lines  {lines / seconds,9:N0} lines/s";
            if (_file.Total is { } total && total > 0)
            {
                text += $"  {100.0 * bytes / total,5:0.0}% of {Megabytes(total)}";
                if (!final && bytes > 0 && bytes < total)
                {
                    var left = TimeSpan.FromSeconds((total - bytes) / (bytes / seconds));
                    text += $"  ETA {(int)left.TotalMinutes}:{left.Seconds:00}";
                }
            }
            else
            {
                text += $"  {Megabytes(bytes)} sent";
            }
            if (_file.Done && !final)
            {
                text += "  (all sent; the hub is finishing)";
            }
            if (_inPlace)
            {
                var padding = Math.Max(0, _shownLength - text.Length);
                _shownLength = text.Length;
                await _writer.WriteAsync("\r" + text + new string(' ', padding));
            }
            else
            {
                await _writer.WriteLineAsync(text.Trim());
            }
            await _writer.FlushAsync();
        }

        private static string Megabytes(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MB";
    }
}
