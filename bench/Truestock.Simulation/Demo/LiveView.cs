using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Truestock.Simulation.Demo;

/// <summary>A connected channel's publication status, from <c>GET /v1/channels/{id}/sync</c>.</summary>
internal sealed record ChannelStatus(
    long Pending, double OldestPendingSeconds, long Published, long Calls, long Throttles, long DeadLetters,
    bool Degraded, long DegradationUnits, int DegradationPercent, string? LastError)
{
    public static ChannelStatus Parse(JsonNode json) => new(
        json["pending"]!.GetValue<long>(), json["oldestPendingSeconds"]!.GetValue<double>(), json["published"]!.GetValue<long>(),
        json["calls"]!.GetValue<long>(), json["throttles"]!.GetValue<long>(), json["deadLetters"]!.GetValue<long>(),
        json["degraded"]!.GetValue<bool>(), json["degradationUnits"]!.GetValue<long>(), json["degradationPercent"]!.GetValue<int>(),
        json["lastError"]?.GetValue<string>());
}

/// <summary>
/// The live console view: once a second it reads the hub the way an operator would — <c>/metrics</c>,
/// <c>/v1/channels/{id}/sync</c>, <c>/v1/availability/{sku}</c>, <c>/v1/exceptions?type=oversell</c> —
/// and what each emulator shows, and redraws in place (like top). When the output is not a terminal
/// (or with --plain) it prints one status line every five seconds instead.
/// </summary>
internal sealed class LiveView
{
    private readonly HubClient _hub;
    private readonly Traffic _traffic;
    private readonly DemoOptions _options;
    private readonly string _dataFile;
    private readonly DemoChannel[] _connected;
    private readonly bool _inPlace;
    private readonly Dictionary<string, double> _degradedSeconds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _backlogPeak = new(StringComparer.Ordinal);
    private (double At, long Events, long Held, long Refused)? _previous;
    private (double At, long Events, long Held, long Refused)? _first;
    private long _oversellCursor;
    private double _lastPlainLine = double.NegativeInfinity;

    public LiveView(HubClient hub, Traffic traffic, DemoOptions options, IEnumerable<DemoChannel> channels, string dataFile)
    {
        _dataFile = dataFile;
        _hub = hub;
        _traffic = traffic;
        _options = options;
        _connected = [.. channels.Where(c => c.Connected)];
        _inPlace = !options.Plain && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb";
    }

    public double EventsPerSecond { get; private set; }
    public double ReservationsPerSecond { get; private set; }
    public double RefusedPerSecond { get; private set; }

    /// <summary>Oversell exceptions raised by reservation traffic (orders, shipments): must stay 0.</summary>
    public long OversellsFromReservations { get; private set; }

    /// <summary>Oversell exceptions raised by till sales of units the hub had already promised online.</summary>
    public long OversellsFromTills { get; private set; }

    /// <summary>Every oversell the hub counted (<c>truestock_oversells_total</c>); more than the two above means some could not be read.</summary>
    public long OversellsTotal { get; private set; }

    /// <summary>Oversells counted by /metrics that the exception list did not (yet) show: they might be from reservations.</summary>
    public long OversellsUnclassified => Math.Max(0, OversellsTotal - OversellsFromTills - OversellsFromReservations);

    public IReadOnlyDictionary<string, ChannelStatus> Channels { get; private set; } = new Dictionary<string, ChannelStatus>();

    public IReadOnlyDictionary<string, double> DegradedSeconds => _degradedSeconds;

    public IReadOnlyDictionary<string, long> BacklogPeak => _backlogPeak;

    /// <summary>Average hub rates over the whole run, from /metrics.</summary>
    public (double Events, double Reservations) Averages =>
        _first is { } f && _previous is { } p && p.At > f.At ? ((p.Events - f.Events) / (p.At - f.At), (p.Held - f.Held) / (p.At - f.At)) : (0, 0);

    /// <summary>Samples and redraws every second until <paramref name="ct"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        if (_inPlace)
        {
            Console.Write("\u001b[?25l\u001b[2J");
        }
        try
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            do
            {
                await RefreshAsync(ct);
            }
            while (await timer.WaitForNextTickAsync(ct));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The demo is stopping; the summary follows.
        }
        finally
        {
            if (_inPlace)
            {
                Console.Write("\u001b[?25h");
            }
        }
    }

    /// <summary>Reads the hub's channel statuses once (also used by the convergence check).</summary>
    public async Task<IReadOnlyDictionary<string, ChannelStatus>> ReadChannelsAsync(CancellationToken ct)
    {
        var result = new Dictionary<string, ChannelStatus>(StringComparer.Ordinal);
        foreach (var channel in _connected)
        {
            var answer = await _hub.GetAsync($"/v1/channels/{channel.Id}/sync", ct);
            if (answer.Ok)
            {
                result[channel.Id] = ChannelStatus.Parse(answer.Body!);
            }
        }
        return result;
    }

    private async Task RefreshAsync(CancellationToken ct)
    {
        var now = _traffic.Elapsed;
        try
        {
            await ReadMetricsAsync(now, ct);
            var previous = Channels;
            Channels = await ReadChannelsAsync(ct);
            foreach (var (id, status) in Channels)
            {
                _backlogPeak[id] = Math.Max(_backlogPeak.GetValueOrDefault(id), status.Pending);
                if (status.Degraded && previous.ContainsKey(id))
                {
                    _degradedSeconds[id] = _degradedSeconds.GetValueOrDefault(id) + 1;
                }
            }
            await ReadOversellsAsync(ct);
            var hot = await ReadHotSkusAsync(ct);
            if (_inPlace)
            {
                // Lines longer than the terminal would wrap and push the frame down on every redraw.
                var width = TerminalWidth();
                var lines = Frame(now, hot).Split('\n').Select(l => (l.Length > width ? l[..width] : l) + "\u001b[K");
                Console.Write("\u001b[H" + string.Join('\n', lines) + "\u001b[J");
            }
            else if (now - _lastPlainLine >= 5)
            {
                _lastPlainLine = now;
                Console.WriteLine(PlainLine(now));
            }
        }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            // The hub is stopping or overloaded (a refused connection, a timeout): say so and keep
            // trying; the traffic counts its own errors.
            Console.WriteLine($"(the live view could not read the hub: {e.Message})");
        }
    }

    /// <summary>The final count of oversells, after the traffic: /metrics' total and the exception list.</summary>
    public async Task ReadOversellTotalsAsync(CancellationToken ct)
    {
        var text = await _hub.GetTextAsync("/metrics", ct);
        if (text.Split('\n').FirstOrDefault(l => l.StartsWith("truestock_oversells_total ", StringComparison.Ordinal)) is { } line)
        {
            OversellsTotal = Value(line);
        }
        await ReadOversellsAsync(ct);
    }

    private static long Value(string line) =>
        long.TryParse(line[(line.LastIndexOf(' ') + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0;

    private async Task ReadMetricsAsync(double now, CancellationToken ct)
    {
        var text = await _hub.GetTextAsync("/metrics", ct);
        long events = 0, held = 0, refused = 0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("truestock_events_total{", StringComparison.Ordinal))
            {
                events += Value(line);
            }
            else if (line.StartsWith("truestock_reservation_requests_total{outcome=\"created\"}", StringComparison.Ordinal))
            {
                held += Value(line);
            }
            else if (line.StartsWith("truestock_reservation_requests_total{outcome=\"insufficient\"}", StringComparison.Ordinal))
            {
                refused += Value(line);
            }
            else if (line.StartsWith("truestock_oversells_total ", StringComparison.Ordinal))
            {
                OversellsTotal = Value(line);
            }
        }
        var sample = (now, events, held, refused);
        _first ??= sample;
        if (_previous is { } p && now > p.At)
        {
            var dt = now - p.At;
            EventsPerSecond = (events - p.Events) / dt;
            ReservationsPerSecond = (held - p.Held) / dt;
            RefusedPerSecond = (refused - p.Refused) / dt;
        }
        _previous = sample;
    }

    /// <summary>
    /// New oversell exceptions since the last look. Reservations never make available negative, so
    /// any from reservation traffic would be a bug; a till can sell a unit the hub promised online
    /// (the shelf is physical), which the hub records as an oversell caused by that sale.
    /// </summary>
    private async Task ReadOversellsAsync(CancellationToken ct)
    {
        for (var page = 0; page < 10; page++)
        {
            var answer = await _hub.GetAsync($"/v1/exceptions?type=oversell&limit=1000&after={_oversellCursor}", ct);
            if (!answer.Ok)
            {
                return;
            }
            var items = answer.Body!["items"]!.AsArray();
            foreach (var item in items)
            {
                // Engine exceptions (oversells are) carry a numeric id, which "after" accepts as a cursor.
                _oversellCursor = Math.Max(_oversellCursor, item!["id"]?.GetValue<long>() ?? _oversellCursor);
                if (item["source"]?.GetValue<string>() is { } source && source.StartsWith("pos-", StringComparison.Ordinal))
                {
                    OversellsFromTills++;
                }
                else
                {
                    OversellsFromReservations++;
                }
            }
            if (answer.Body["next"] is null)
            {
                return;
            }
        }
    }

    private sealed record HotRow(string Sku, Dictionary<string, (long Hub, long? Shown, string? Buffer)> Channels);

    private async Task<List<HotRow>> ReadHotSkusAsync(CancellationToken ct)
    {
        var rows = new List<HotRow>();
        foreach (var sku in _traffic.HotSkus)
        {
            var answer = await _hub.GetAsync($"/v1/availability/{sku}", ct);
            if (!answer.Ok)
            {
                continue;
            }
            var cells = new Dictionary<string, (long, long?, string?)>(StringComparer.Ordinal);
            foreach (var c in answer.Body!["channels"]!.AsArray())
            {
                var id = c!["channelId"]!.GetValue<string>();
                if (_connected.FirstOrDefault(x => x.Id == id) is { } channel)
                {
                    cells[id] = (c["available"]!.GetValue<long>(), channel.Shows!(sku), BufferText(c["buffer"]));
                }
            }
            rows.Add(new HotRow(sku, cells));
        }
        return rows;
    }

    /// <summary>Why a channel withholds units (only the dynamic parts: velocity and degradation).</summary>
    private static string? BufferText(JsonNode? buffer)
    {
        if (buffer is null)
        {
            return null;
        }
        var parts = new List<string>();
        if (buffer["velocityUnits"]!.GetValue<long>() is var v and > 0)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"velocity {v} ({buffer["velocityUnitsPerSecond"]!.GetValue<double>():0.00}/s x {buffer["propagationDelaySeconds"]!.GetValue<double>():0.#} s)"));
        }
        if (buffer["degradationUnits"]!.GetValue<long>() is var d and > 0)
        {
            parts.Add($"degraded {d}");
        }
        return parts.Count == 0 ? null : string.Join(", ", parts);
    }

    // ------------------------------------------------------------------ drawing

    private string Frame(double now, List<HotRow> hot)
    {
        var s = _traffic.Stats;
        var sb = new StringBuilder();
        var until = _options.Seconds is { } total ? $"stops at {Clock(total)}; Ctrl+C stops now" : "Ctrl+C to stop";
        sb.AppendLine($"Truestock demo   hub {_hub.BaseAddress.ToString().TrimEnd('/')}   seed {_options.Seed}, {_options.Rate} customers/s   {Clock(now)} ({until})");
        sb.AppendLine("Channels are in-process EMULATORS of Shopify, Amazon, Walmart and a webhook portal, not the real services.");
        sb.AppendLine($"Hub data: {_dataFile}");
        sb.AppendLine();
        sb.AppendLine(Inv($"hub        events {EventsPerSecond,5:0.0}/s   reservations {ReservationsPerSecond,5:0.0}/s   refused for lack of ATS {RefusedPerSecond,4:0.0}/s"));
        sb.AppendLine(Inv($"traffic    till sales {Read(ref s.TillSales),6:N0}   orders {Read(ref s.OrdersPlaced),6:N0}   committed {Read(ref s.Commits),6:N0}   released {Read(ref s.Releases),5:N0}   shipped {Read(ref s.Shipments),6:N0}   returns {Read(ref s.Returns),4:N0}   deliveries {Read(ref s.Replenishments),4:N0}"));
        var unclassified = OversellsUnclassified > 0 ? $"   {OversellsUnclassified} not read yet" : "";
        sb.AppendLine(Inv($"oversells  {OversellsFromReservations} from reservations (must stay 0)   {OversellsFromTills} from till sales{unclassified}   hub errors {Read(ref s.HubErrors)}")
            + (Volatile.Read(ref s.LastHubError) is { } error ? $" (last: {Cut(error, 60)})" : ""));
        sb.AppendLine(_traffic.CurrentFlash is { } flash
            ? Inv($"FLASH SALE on {string.Join(" and ", flash.Skus)}: extra online demand for {flash.EndSeconds - now:0} more s")
            : _traffic.LastFlash is { } last ? $"flash sale on {string.Join(" and ", last.Skus)} is over" : "flash sale: not yet");
        sb.AppendLine();
        sb.AppendLine("channel  emulator           backlog   oldest  published   calls  throttles  dead  degraded");
        foreach (var channel in _connected)
        {
            if (!Channels.TryGetValue(channel.Id, out var c))
            {
                continue;
            }
            var degraded = c.Degraded ? $"YES: withholds {c.DegradationUnits} + {c.DegradationPercent}%" : "no";
            sb.AppendLine(Inv($"{channel.Id,-8} {channel.Emulator,-17} {c.Pending,8} {c.OldestPendingSeconds,7:0.0}s {c.Published,10:N0} {c.Calls,7:N0} {c.Throttles,10:N0} {c.DeadLetters,5} {degraded}"));
        }
        sb.AppendLine("limits   " + string.Join("; ", _connected.Select(c => $"{c.Id} {c.Limits}")));
        sb.AppendLine();
        sb.Append("hot SKU              ");
        foreach (var channel in _connected)
        {
            sb.Append($"{channel.Id,-10}");
        }
        sb.AppendLine("  (hub ATS/what the emulator shows; * = on its way)");
        foreach (var row in hot)
        {
            var flag = _traffic.CurrentFlash?.Skus.Contains(row.Sku) == true ? "FLASH" : "";
            sb.Append($"{row.Sku,-15}{flag,-6}");
            var notes = new List<string>();
            foreach (var channel in _connected)
            {
                if (!row.Channels.TryGetValue(channel.Id, out var cell))
                {
                    sb.Append($"{"-",-10}");
                    continue;
                }
                var text = $"{cell.Hub}/{cell.Shown?.ToString(CultureInfo.InvariantCulture) ?? "-"}{(cell.Shown == cell.Hub ? "" : "*")}";
                sb.Append($"{text,-10}");
                if (cell.Buffer is { } buffer)
                {
                    notes.Add($"{channel.Id}: {buffer}");
                }
            }
            sb.AppendLine(notes.Count == 0 ? "" : "  " + string.Join("; ", notes));
        }
        sb.AppendLine();
        var b = _hub.BaseAddress.ToString().TrimEnd('/');
        var sku = hot.FirstOrDefault()?.Sku ?? Catalog.Skus[0];
        sb.AppendLine("try it in another terminal:");
        sb.AppendLine($"  curl -s {b}/v1/availability/{sku}");
        sb.AppendLine($"  curl -s {b}/v1/channels/web/sync");
        sb.AppendLine($"  curl -s {b}/metrics | grep truestock_channel");
        sb.AppendLine($"  curl -s {b}/openapi/v1.json");
        return sb.ToString();
    }

    private string PlainLine(double now)
    {
        var s = _traffic.Stats;
        var channels = string.Join("  ", _connected.Where(c => Channels.ContainsKey(c.Id)).Select(c =>
        {
            var st = Channels[c.Id];
            return Inv($"{c.Id} backlog {st.Pending} published {st.Published} throttles {st.Throttles} dead {st.DeadLetters}{(st.Degraded ? " DEGRADED" : "")}");
        }));
        var flash = _traffic.CurrentFlash is { } f ? $" FLASH SALE {string.Join(",", f.Skus)}" : "";
        return Inv($"[{Clock(now)}] events {EventsPerSecond:0}/s reservations {ReservationsPerSecond:0}/s orders {Read(ref s.OrdersPlaced)} shipped {Read(ref s.Shipments)} oversells {OversellsFromReservations}/{OversellsFromTills}{flash} | {channels}");
    }

    private static long Read(ref long counter) => TrafficStats.Read(ref counter);

    private static int TerminalWidth()
    {
        try
        {
            return Console.WindowWidth > 20 ? Console.WindowWidth - 1 : 160;
        }
        catch (IOException)
        {
            return 160;
        }
    }

    private static string Clock(double seconds) => TimeSpan.FromSeconds(Math.Floor(seconds)).ToString(seconds >= 3600 ? @"h\:mm\:ss" : @"mm\:ss", CultureInfo.InvariantCulture);

    private static string Cut(string text, int length) => text.Length <= length ? text : text[..(length - 3)] + "...";

    private static string Inv(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
