using System.Diagnostics;
using Truestock.Bench;

// The baseline server is this same executable, started by the harness as a separate process.
if (args is ["baseline-server", ..])
{
    return await BaselineServer.Run(args);
}

string[] verbs = ["all", "engine", "http", "recovery", "memory", "postgres", "profile"];
var verb = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "all";
var quick = args.Contains("--quick");
if (!verbs.Contains(verb) || args.Any(a => a.StartsWith("--", StringComparison.Ordinal) && a != "--quick"))
{
    Console.Error.WriteLine("usage: dotnet run -c Release --project bench/Truestock.Bench -- [all|engine|http|recovery|memory|postgres|profile] [--quick]");
    return 2;
}

var root = Harness.FindRepoRoot();
var artifacts = Path.Combine(root, "artifacts", "bench");
Directory.CreateDirectory(artifacts);
var work = Path.Combine(Path.GetTempPath(), "truestock-bench", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));
Directory.CreateDirectory(work);
var scale = new Scale(quick);
var report = new Report();
var machine = MachineInfo.Read();
var command = "dotnet run -c Release --project bench/Truestock.Bench -- " + string.Join(' ', args.Length == 0 ? ["all"] : args);
var total = Stopwatch.StartNew();
Log.Line($"Truestock bench: {verb}{(quick ? " --quick" : "")} on {machine.Cpu}, {machine.Cores} cores, {machine.MemoryGiB} GiB; load average {machine.LoadAverage1m:F2}; scratch {work}");
if (machine.LoadAverage1m > 0.5)
{
    report.Notes.Add($"The machine was not idle at the start (load average {machine.LoadAverage1m:F2}); figures may be low.");
}

var failed = false;
async Task Section(string name, Func<Task> run)
{
    try
    {
        await run();
    }
    catch (Exception ex)
    {
        // One broken scenario must not lose the figures of the others: it is reported and the run goes on.
        failed = true;
        Log.Line($"{name}: FAILED: {ex}");
        report.Notes.Add($"The {name} section failed: {ex.GetType().Name}: {ex.Message.Split('\n')[0]}");
    }
}

string? hubDll = null;
if (verb is "all" or "http" or "recovery" or "postgres" or "profile")
{
    await Section("build", async () => hubDll = await Harness.BuildHub(root));
}

if (verb == "profile")
{
    // A profile perturbs what it measures, so it is a separate verb and writes its own file, not the report.
    if (hubDll is null)
    {
        return 1;
    }
    var profile = Profiler.Markdown(await new Profiler(scale, hubDll, work, artifacts).Run());
    await File.WriteAllTextAsync(Path.Combine(artifacts, "profile.md"), profile);
    Console.WriteLine();
    Console.WriteLine(profile);
    Log.Line($"wrote {Path.Combine(artifacts, "profile.md")} in {total.Elapsed.TotalMinutes:F1} min");
    Directory.Delete(work, recursive: true);
    return 0;
}

if (verb is "all" or "engine")
{
    await Section("engine", () => Harness.Engine(report, scale, artifacts, work, quick));
}
if (verb is "all" or "memory")
{
    await Section("memory", () =>
    {
        Harness.Memory(report, scale);
        return Task.CompletedTask;
    });
}
if (verb is "all" or "http" && hubDll is not null)
{
    await Section("http", () => new HttpScenarios(scale, report, hubDll, work).Run());
}
if (verb is "all" or "recovery" && hubDll is not null)
{
    await Section("recovery", () => Harness.Recovery(report, scale, hubDll, work, artifacts));
}
if (verb is "all" or "postgres" && hubDll is not null)
{
    // Last: the PostgreSQL server it starts then runs only while its own scenarios are measured.
    await Section("http-postgres", () => Harness.HttpPostgres(report, scale, root, hubDll, work));
}

Harness.AddScaleNotes(report, scale, verb);
var markdown = report.Markdown(machine, command, quick, total.Elapsed);
await File.WriteAllTextAsync(Path.Combine(artifacts, "report.md"), markdown);
await File.WriteAllTextAsync(Path.Combine(artifacts, "report.json"), report.ToJson(machine, command, quick, total.Elapsed));
try
{
    Directory.Delete(work, recursive: true);
}
catch (IOException ex)
{
    Log.Line($"could not delete the scratch folder {work}: {ex.Message}");
}
Console.WriteLine();
Console.WriteLine(markdown);
Log.Line($"wrote {Path.Combine(artifacts, "report.md")} and report.json in {total.Elapsed.TotalMinutes:F1} min");
return failed ? 1 : 0;
