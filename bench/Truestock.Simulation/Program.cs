using System.Globalization;
using System.Text;
using System.Text.Json;
using Truestock.Simulation;

// Verbs: "demo" runs the hub with emulated channels and live traffic (Demo/); "simulate", or no
// verb, runs the deterministic simulation below.
if (args.Length > 0 && args[0] == "demo")
{
    return await Truestock.Simulation.Demo.DemoCommand.RunAsync(args[1..]);
}
if (args.Length > 0 && args[0] == "simulate")
{
    args = args[1..];
}

// Deterministic: the same seed gives the same demand and the same results, run after run.
var seed = 42;
var days = 3;
var skus = 60;
var output = Path.Combine("artifacts", "simulation");
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--seed" when i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var s):
            seed = s;
            i++;
            break;
        case "--days" when i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var d) && d is >= 2 and <= 30:
            days = d;
            i++;
            break;
        case "--skus" when i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var k) && k is >= 1 and <= 5000:
            skus = k;
            i++;
            break;
        case "--out" when i + 1 < args.Length:
            output = args[++i];
            break;
        default:
            Console.Error.WriteLine($"unknown or invalid argument '{args[i]}'");
            Console.Error.WriteLine("usage: [simulate] [--seed N] [--days 2..30] [--skus 1..5000] [--out DIR]");
            Console.Error.WriteLine("   or: demo --help (the hub with emulated channels and live traffic)");
            return 2;
    }
}

Console.WriteLine($"Simulating a retailer for {days} days: 5 channels, 3 fulfilment nodes, {skus} SKUs, promotion on day 2 (seed {seed}).");
var scenario = new Scenario(seed, days, skus);
Console.WriteLine($"Demand: {scenario.Demands.Count:N0} events, the same for both runs.");

var classic = new ClassicRun(scenario).Run(m => Progress("classic  ", m, scenario.Minutes));
Console.Error.WriteLine();
var truestock = new TruestockRun(scenario).Run(m => Progress("truestock", m, scenario.Minutes));
Console.Error.WriteLine();

var table = new StringBuilder();
table.AppendLine("| measure | classic integration | Truestock |");
table.AppendLine("|---|---:|---:|");
Row("orders accepted", classic.OrdersAccepted, truestock.OrdersAccepted);
Row("orders cancelled after acceptance", classic.OrdersCancelled, truestock.OrdersCancelled);
Row("oversold units", classic.OversoldUnits, truestock.OversoldUnits);
Row("lost sales (units refused while sellable stock existed)", classic.LostSalesUnits, truestock.LostSalesUnits);
Row("units shipped", classic.UnitsShipped, truestock.UnitsShipped);
Row("store till units sold", classic.PosUnitsSold, truestock.PosUnitsSold);
table.AppendLine(CultureInfo.InvariantCulture, $"| average channel drift (units, all channels and SKUs) | {classic.AverageDrift:F1} | {truestock.AverageDrift:F1} |");
Console.WriteLine();
Console.Write(table);

Directory.CreateDirectory(output);
var chart = Path.Combine(output, "drift.svg");
File.WriteAllText(chart, Svg(classic, truestock, days));
File.WriteAllText(Path.Combine(output, "results.json"), JsonSerializer.Serialize(new { seed, days, skus, classic, truestock },
    new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
File.WriteAllText(Path.Combine(output, "results.md"), table.ToString());
Console.WriteLine();
Console.WriteLine($"Chart of drift over time: {chart}; numbers: {Path.Combine(output, "results.json")}");
return 0;

void Row(string name, long a, long b) => table.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {a:N0} | {b:N0} |");

static void Progress(string name, int minute, int total)
{
    const int width = 30;
    var done = (minute + 1) * width / total;
    Console.Error.Write($"\r{name} [{new string('#', done)}{new string('-', width - done)}] {(minute + 1) * 100 / total,3}%");
}

static string Svg(Outcome classic, Outcome truestock, int days)
{
    const int w = 900, h = 360, left = 60, right = 20, top = 30, bottom = 50;
    var hours = classic.DriftByHour.Length;
    var max = Math.Max(1, Math.Max(classic.DriftByHour.Max(), truestock.DriftByHour.Max()));
    string X(int i) => (left + (double)i * (w - left - right) / Math.Max(1, hours - 1)).ToString("F1", CultureInfo.InvariantCulture);
    string Y(double v) => (top + (h - top - bottom) * (1 - v / max)).ToString("F1", CultureInfo.InvariantCulture);
    string Line(Outcome o) => string.Join(' ', o.DriftByHour.Select((v, i) => $"{X(i)},{Y(v)}"));
    var sb = new StringBuilder();
    sb.AppendLine(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"18\" font-size=\"14\">Channel stock drift (units shown minus units really sellable, summed over channels and SKUs)</text>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{h - bottom}\" x2=\"{w - right}\" y2=\"{h - bottom}\" stroke=\"black\"/>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{h - bottom}\" stroke=\"black\"/>");
    for (var d = 0; d <= days; d++)
    {
        var x = X(Math.Min(hours - 1, d * 24));
        sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{x}\" y=\"{h - bottom + 16}\" text-anchor=\"middle\">day {d}</text>");
    }
    sb.AppendLine(CultureInfo.InvariantCulture, $"<rect x=\"{X(24 + 10)}\" y=\"{top}\" width=\"{(double.Parse(X(24 + 22), CultureInfo.InvariantCulture) - double.Parse(X(24 + 10), CultureInfo.InvariantCulture)).ToString("F1", CultureInfo.InvariantCulture)}\" height=\"{h - top - bottom}\" fill=\"#fff3c4\"/>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{X(24 + 11)}\" y=\"{top + 14}\">promotion (x3 demand)</text>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{left - 6}\" y=\"{top + 4}\" text-anchor=\"end\">{max:F0}</text>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{left - 6}\" y=\"{h - bottom}\" text-anchor=\"end\">0</text>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\" points=\"{Line(classic)}\"/>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"#2471a3\" stroke-width=\"2\" points=\"{Line(truestock)}\"/>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{w - 260}\" y=\"{top + 30}\" fill=\"#c0392b\">classic (15-minute polling): avg {classic.AverageDrift:F0}</text>");
    sb.AppendLine(CultureInfo.InvariantCulture, $"<text x=\"{w - 260}\" y=\"{top + 48}\" fill=\"#2471a3\">Truestock: avg {truestock.AverageDrift:F0}</text>");
    sb.AppendLine("</svg>");
    return sb.ToString();
}
