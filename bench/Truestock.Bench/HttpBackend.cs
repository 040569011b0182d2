namespace Truestock.Bench;

/// <summary>
/// The store both servers of the HTTP scenarios run on, and how they are started: SQLite files in
/// the scratch folder (section "http"), or one database each on a PostgreSQL server
/// (section "http-postgres").
/// </summary>
public sealed class HttpBackend
{
    /// <summary>The report section of the rows, also the prefix of details and progress lines.</summary>
    public required string Section { get; init; }

    public required Func<ServerProcess> StartHub { get; init; }

    public required Func<ServerProcess> StartBaseline { get; init; }

    /// <summary>True when the database is a server of its own, so the servers' CPU figures leave its work out.</summary>
    public bool DatabaseServer { get; init; }

    /// <summary>
    /// CPU seconds the database server's processes have used so far, or null when they cannot be
    /// read (a server on another machine).
    /// </summary>
    public Func<double>? DatabaseCpuSeconds { get; init; }

    public static HttpBackend Sqlite(string hubDll, string workDir) => new()
    {
        Section = "http",
        StartHub = () => ServerProcess.StartHub(hubDll, Path.Combine(workDir, "http-hub", "hub.db")),
        StartBaseline = () => ServerProcess.StartBaseline(Path.Combine(workDir, "http-baseline", "baseline.db")),
    };

    /// <param name="hubDatabase">Npgsql connection string of the hub's database.</param>
    /// <param name="baselineDatabase">Npgsql connection string of the baseline's database.</param>
    public static HttpBackend Postgres(string hubDll, string workDir, string hubDatabase, string baselineDatabase, Func<double>? databaseCpuSeconds) => new()
    {
        Section = "http-postgres",
        // The hub journals into PostgreSQL; its data path is given only because it always has one.
        StartHub = () => ServerProcess.StartHub(hubDll, Path.Combine(workDir, "http-postgres-hub", "hub.db"), "--Truestock:PostgresConnectionString=" + hubDatabase),
        StartBaseline = () => ServerProcess.StartPostgresBaseline(baselineDatabase),
        DatabaseServer = true,
        DatabaseCpuSeconds = databaseCpuSeconds,
    };
}
