using Truestock.Server;

var app = HubApp.Build(args);
await app.RunAsync();
