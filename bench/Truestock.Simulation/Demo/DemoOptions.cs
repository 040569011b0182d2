using System.Globalization;

namespace Truestock.Simulation.Demo;

/// <summary>The demo's command line: <c>demo [--port N] [--data FILE] [--seed N] [--rate N] [--seconds N] [--plain]</c>.</summary>
internal sealed record DemoOptions
{
    public const string Usage = """
        usage: demo [--port N] [--data FILE] [--seed N] [--rate N] [--seconds N] [--plain]

          --port N      where the hub listens on 127.0.0.1 (default 5080)
          --data FILE   keep the hub's SQLite data in FILE (default: a fresh file in a temp folder, deleted at the end)
          --seed N      seed of the synthetic traffic (default 42): the same seed makes the same choices
          --rate N      customer actions per second, till sales plus online orders, 1-500 (default 20)
          --seconds N   stop the traffic after N seconds, 5-86400 (default: run until Ctrl+C)
          --plain       print a status line every 5 seconds instead of the live view (automatic when output is redirected)
        """;

    public int Port { get; init; } = 5080;
    public string? DataFile { get; init; }
    public int Seed { get; init; } = 42;
    public int Rate { get; init; } = 20;
    public int? Seconds { get; init; }
    public bool Plain { get; init; }

    /// <summary>Parses the arguments after the verb; returns null and an error naming the argument when they are wrong.</summary>
    public static DemoOptions? Parse(string[] args, out string? error)
    {
        error = null;
        var options = new DemoOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (name)
            {
                case "--port" when Int(value, 1, 65535) is { } port:
                    options = options with { Port = port };
                    i++;
                    break;
                case "--data" when !string.IsNullOrWhiteSpace(value) && !value.StartsWith("--", StringComparison.Ordinal):
                    options = options with { DataFile = Path.GetFullPath(value) };
                    i++;
                    break;
                case "--seed" when Int(value, int.MinValue, int.MaxValue) is { } seed:
                    options = options with { Seed = seed };
                    i++;
                    break;
                case "--rate" when Int(value, 1, 500) is { } rate:
                    options = options with { Rate = rate };
                    i++;
                    break;
                case "--seconds" when Int(value, 5, 86_400) is { } seconds:
                    options = options with { Seconds = seconds };
                    i++;
                    break;
                case "--plain":
                    options = options with { Plain = true };
                    break;
                case "--port" or "--data" or "--seed" or "--rate" or "--seconds":
                    var expected = name switch
                    {
                        "--port" => "a port number from 1 to 65535",
                        "--data" => "a file path",
                        "--seed" => "a whole number",
                        "--rate" => "a whole number of customer actions per second from 1 to 500",
                        _ => "a whole number of seconds from 5 to 86400",
                    };
                    error = $"{name} needs {expected} (got '{value ?? "nothing"}').";
                    return null;
                default:
                    error = $"unknown argument '{name}'.";
                    return null;
            }
        }
        return options;
    }

    private static int? Int(string? text, int min, int max) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max ? value : null;
}
