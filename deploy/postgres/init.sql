-- One database and one owner per service: no service reads another's tables.
CREATE USER intake PASSWORD 'intake';
CREATE DATABASE intake OWNER intake;
CREATE USER dispatch PASSWORD 'dispatch';
CREATE DATABASE dispatch OWNER dispatch;
CREATE USER warranty PASSWORD 'warranty';
CREATE DATABASE warranty OWNER warranty;
CREATE USER complaints PASSWORD 'complaints';
CREATE DATABASE complaints OWNER complaints;
CREATE USER analytics PASSWORD 'analytics';
CREATE DATABASE analytics OWNER analytics;
