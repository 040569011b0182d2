using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Truestock.Server.Tests;

/// <summary>
/// The store a test hub runs on: a SQLite file in a temporary folder, or a fresh PostgreSQL
/// database on the server that ./test.sh starts. TRUESTOCK_TEST_BACKEND picks it, so the whole
/// HTTP suite runs on both stores.
/// </summary>
public sealed class TestStorage : IAsyncDisposable
{
    private TestStorage(string backend, string directory, string? database)
    {
        Backend = backend;
        Directory = directory;
        Database = database;
    }

    public static string CurrentBackend => Environment.GetEnvironmentVariable("TRUESTOCK_TEST_BACKEND") ?? "sqlite";

    public string Backend { get; }

    public string Directory { get; }

    public string? Database { get; }

    public string DataPath => Path.Combine(Directory, "hub.db");

    /// <summary>The PostgreSQL server ./test.sh started, or a clear failure when it is not there.</summary>
    public static string PostgresAdminConnectionString =>
        Environment.GetEnvironmentVariable("TRUESTOCK_TEST_POSTGRES")
        ?? throw new InvalidOperationException(
            "TRUESTOCK_TEST_POSTGRES is not set: PostgreSQL tests need the server that ./test.sh installs and starts. Run ./test.sh.");

    public string PostgresConnectionString =>
        new NpgsqlConnectionStringBuilder(PostgresAdminConnectionString) { Database = Database }.ToString();

    /// <summary>Command-line arguments that point a hub at this store.</summary>
    public string[] HubArgs => Backend == "postgres"
        ? ["--Truestock:PostgresConnectionString=" + PostgresConnectionString]
        : ["--Truestock:DataPath=" + DataPath];

    public static Task<TestStorage> Create() => Create(CurrentBackend);

    public static async Task<TestStorage> Create(string backend)
    {
        var directory = Path.Combine(Path.GetTempPath(), "truestock-tests", Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        if (backend == "sqlite")
        {
            return new TestStorage(backend, directory, null);
        }
        if (backend != "postgres")
        {
            throw new InvalidOperationException($"Unknown TRUESTOCK_TEST_BACKEND '{backend}': use sqlite or postgres.");
        }
        var database = "ts_" + Guid.NewGuid().ToString("N");
        await using var admin = new NpgsqlConnection(PostgresAdminConnectionString);
        await admin.OpenAsync();
        await using var create = admin.CreateCommand();
        create.CommandText = $"CREATE DATABASE {database}";
        await create.ExecuteNonQueryAsync();
        return new TestStorage(backend, directory, database);
    }

    /// <summary>Opens a connection to the store, for tests that look underneath the hub.</summary>
    public DbConnection Connect()
    {
        DbConnection c = Backend == "postgres"
            ? new NpgsqlConnection(new NpgsqlConnectionStringBuilder(PostgresConnectionString) { Pooling = false }.ToString())
            : new SqliteConnection($"Data Source={DataPath};Pooling=False");
        c.Open();
        return c;
    }

    public int Execute(string sql)
    {
        using var c = Connect();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteNonQuery();
    }

    public async ValueTask DisposeAsync()
    {
        if (Database is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await using var admin = new NpgsqlConnection(PostgresAdminConnectionString);
            await admin.OpenAsync();
            await using var drop = admin.CreateCommand();
            drop.CommandText = $"DROP DATABASE IF EXISTS {Database} WITH (FORCE)";
            await drop.ExecuteNonQueryAsync();
        }
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary folder is harmless; the test result does not depend on it.
        }
    }
}
