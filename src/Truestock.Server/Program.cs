using Truestock.Server;

if (args is ["print-migrations", ..])
{
    // For DBAs who apply schema changes themselves: the hub applies the same script on start.
    var store = args.Length > 1 ? args[1] : "postgres";
    if (store is not ("postgres" or "sqlite"))
    {
        await Console.Error.WriteLineAsync("usage: Truestock.Server print-migrations [postgres|sqlite]");
        return 2;
    }
    Console.Write(HubApp.MigrationScript(store));
    return 0;
}

if (args is ["import", ..])
{
    // CSV imports talk to a running hub over HTTP, so the hub stays the only writer of its store.
    return await Truestock.Server.Ingestion.CsvImportCommand.Run(args[1..]);
}

var app = HubApp.Build(args);
await app.RunAsync();
return 0;
